# syntax=docker/dockerfile:1
# One image for every CRM service. The service is chosen by the argument, as Loki's -target:
#   docker run IMAGE            -> all-in-one (every service in one process, PORT 8080)
#   docker run IMAGE auth       -> the auth service alone (auth, dbservice, chats, timers, admin,
#                                  email, logs, cache)
# The gateway is not in this image: it runs the official nginx image (which has the njs module)
# with the nginx template shipped by the Helm chart.

ARG NODE_IMAGE=node:22.22.0-bookworm-slim

# ---- build: full dependency tree, produce dist/crm.mjs ---------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
# the manifests (root + every workspace) are kept so the runtime stage installs the same tree
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund \
 && npm run build \
 && test -f dist/crm.mjs \
 && mkdir -p /manifests \
 && cp package.json package-lock.json /manifests/ \
 && find packages services -mindepth 2 -maxdepth 2 -name package.json -exec cp --parents {} /manifests/ \;

# ---- runtime: production dependencies only, non-root, read-only root filesystem friendly ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /manifests/ ./
# /data is the only place all-in-one writes (mount an emptyDir or a volume there on Kubernetes)
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund \
 && mkdir -p /data \
 && chown 1000:1000 /data
COPY --from=build /src/dist/ ./dist/
# uid/gid 1000 is the image's "node" user; numeric so Kubernetes' runAsNonRoot can verify it
USER 1000:1000
EXPOSE 8080 9090
# exec form: node is PID 1 and gets SIGTERM itself, then drains (SHUTDOWN_TIMEOUT_MS)
ENTRYPOINT ["node", "--enable-source-maps", "dist/crm.mjs"]
CMD ["all"]
