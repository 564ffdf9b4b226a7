import assert from "node:assert/strict";
import { decodeProtectedHeader } from "jose";
import { until } from "./until.js";

/** What the load needs of an AuthService client. */
export interface RotationAuth {
  login(req: { email: string; password: string }): Promise<{ refreshToken: string }>;
  refresh(req: { refreshToken: string }): Promise<{ refreshToken: string; accessToken: string }>;
  getJwks(req: object): Promise<{ keys: { kid: string }[] }>;
}

/**
 * The load of a JWT key rotation test: `callers` clients refresh their sessions in a loop; every
 * new access token goes to `check` (the verifiers under test), and its kid must be in the JWKS
 * auth serves right after. `kids` holds the kids of tokens from calls started since the last
 * `fresh()` (a call in flight at a switch may still carry the kid from before it). The first
 * failed call stops its caller and fails the next `calls()`.
 */
export function rotationLoad(o: { auth: RotationAuth; email: string; password: string; check: (accessToken: string) => Promise<unknown>; callers?: number }) {
  const kids = new Set<string>();
  const failures: string[] = [];
  let epoch = 0;
  let ok = 0;
  let stopped = false;
  const callers = Array.from({ length: o.callers ?? 4 }, async () => {
    let refreshToken: string;
    try {
      ({ refreshToken } = await o.auth.login({ email: o.email, password: o.password }));
    } catch (err) {
      failures.push(`login: ${String(err)}`);
      return;
    }
    while (!stopped) {
      const started = epoch;
      try {
        const r = await o.auth.refresh({ refreshToken });
        refreshToken = r.refreshToken;
        const kid = decodeProtectedHeader(r.accessToken).kid!;
        await o.check(r.accessToken);
        assert.ok((await o.auth.getJwks({})).keys.some((k) => k.kid === kid), `auth signed with kid ${kid}, which its JWKS does not publish`);
        if (started === epoch) kids.add(kid);
        ok++;
      } catch (err) {
        failures.push(String(err));
        break; // the test fails: stop calling
      }
    }
  });
  return {
    kids,
    failures,
    /** Successful calls so far. */
    get ok() {
      return ok;
    },
    /** Forgets the kids seen so far: from now on only calls started after this count. */
    fresh() {
      kids.clear();
      epoch++;
    },
    /** Waits for 20 more successful calls; fails on any failed one. */
    async calls(what: string) {
      const from = ok;
      await until(what, () => ok >= from + 20 || failures.length > 0, 60_000);
      assert.deepEqual(failures, []);
    },
    /** Stops the callers and waits for their last calls. */
    async stop() {
      stopped = true;
      await Promise.allSettled(callers);
    },
  };
}
