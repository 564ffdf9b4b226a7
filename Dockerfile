# One image for every CRM service. The service is chosen by the argument, as Loki's -target:
#   docker run IMAGE            -> all-in-one (every service in one process, PORT 8080, the web console)
#   docker run IMAGE auth       -> the auth service alone (auth, dbservice, chats, timers, admin,
#                                  email, logs, cache, records, webhooks)
# The gateway is not in this image: it runs the official nginx image (which has the njs module)
# with the nginx template shipped by the Helm chart.
#
# The base is a build argument. Pin it by digest in production so a rebuild cannot change it:
#   docker build --build-arg NODE_IMAGE=node:22.22.0-bookworm-slim@sha256:<digest> .
# (`docker buildx imagetools inspect node:22.22.0-bookworm-slim` prints the digest.) Where no image
# registry answers, scripts/image-base.sh makes a base with debootstrap and prints its tag. Behind a
# TLS-intercepting proxy, hand npm its CA as a build secret (never stored in a layer):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt .
# Layers, from the least to the most often changed: the base; the dependencies (rebuilt only when a
# package.json or the lockfile changes); the code.

ARG NODE_IMAGE=node:22.22.0-bookworm-slim

# ---- manifests: package.json of the root and of every workspace, and the lockfile -------------
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . /context
RUN mkdir -p /manifests \
 && cd /context \
 && cp package.json package-lock.json /manifests/ \
 && find packages services web -mindepth 1 -maxdepth 2 -name package.json -exec cp --parents {} /manifests/ \;

# ---- deps: the full dependency tree, its own layer ----------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
COPY --from=manifests /manifests/ ./
# the prepare script (the web console's build) needs the sources; the build stage runs it
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && npm ci --no-audit --no-fund --ignore-scripts

# ---- build: dist/crm.mjs with its chunks, migrations and PGlite template; web/dist -------------
FROM deps AS build
COPY . .
RUN npm run build \
 && node scripts/build-web.mjs \
 && test -f dist/crm.mjs \
 && test -f web/dist/index.html

# ---- runtime-deps: production dependencies only (no tsx, esbuild, TypeScript, buf, test tools) --
FROM ${NODE_IMAGE} AS runtime-deps
WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN --mount=type=cache,target=/root/.npm --mount=type=secret,id=ca \
    if [ -f /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && rm -rf node_modules/.package-lock.json

# ---- runtime: non-root, read-only root filesystem friendly ---------------------------------------
FROM ${NODE_IMAGE} AS runtime
# (an ARG declared before the first FROM is seen by FROM lines only; declared again to label with it)
ARG NODE_IMAGE
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="crm" \
      org.opencontainers.image.description="A self-hostable, multi-tenant CRM: every service in one image, chosen by the argument" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /app
# /data is the only place all-in-one writes (mount an emptyDir or a volume there on Kubernetes)
RUN mkdir -p /data \
 && chown 1000:1000 /data
COPY --from=runtime-deps /app/ ./
COPY --from=build /src/dist/ ./dist/
COPY --from=build /src/web/dist/ ./web/dist/
# uid/gid 1000 is the image's "node" user; numeric so Kubernetes' runAsNonRoot can verify it
USER 1000:1000
EXPOSE 8080 9090
# exec form: node is PID 1 and gets SIGTERM itself, then drains (SHUTDOWN_TIMEOUT_MS)
ENTRYPOINT ["node", "dist/crm.mjs"]
CMD ["all"]
