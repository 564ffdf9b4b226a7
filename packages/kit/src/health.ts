/** grpc.health.v1.Health: SERVING while the process is ready (its dependencies answer). */
import type { ConnectRouter } from "@connectrpc/connect";
import { create, type DescService } from "@bufbuild/protobuf";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Status } from "@crm/gen/grpc/health/v1/health_pb";
import { AppError } from "./errors.js";

export function registerHealth(router: ConnectRouter, services: DescService[], ready: () => Promise<boolean>) {
  const known = new Set(["", ...services.map((s) => s.typeName)]);
  const unknown = (service: string) => new AppError("not_found", `unknown service ${JSON.stringify(service)}; known: ${[...known].filter(Boolean).join(", ")}`);
  const status = async (service: string) => {
    if (!known.has(service)) throw unknown(service);
    return (await ready()) ? Status.SERVING : Status.NOT_SERVING;
  };
  // Check's two answers, made once (probes and load balancers call it often).
  const serving = create(HealthCheckResponseSchema, { status: Status.SERVING });
  const notServing = create(HealthCheckResponseSchema, { status: Status.NOT_SERVING });
  router.service(Health, {
    check(req) {
      if (!known.has(req.service)) throw unknown(req.service);
      return ready().then((ok) => (ok ? serving : notServing));
    },
    async list() {
      const s = (await ready()) ? Status.SERVING : Status.NOT_SERVING;
      return { statuses: Object.fromEntries([...known].map((name) => [name, { status: s }])) };
    },
    async *watch(req, ctx) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const s = known.has(req.service) ? await status(req.service) : Status.SERVICE_UNKNOWN;
        if (s !== last) yield { status: (last = s) };
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 5_000);
          ctx.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
        });
      }
    },
  });
}
