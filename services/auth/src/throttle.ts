/**
 * Login-failure throttling that an attacker cannot turn into a lockout of the victim:
 * failures are counted per (account, IP) and per IP, never per account alone, so guessing from
 * one address locks out only that address for that account, and the owner still logs in.
 */
import { AppError, type Counter } from "@crm/kit";

export interface ThrottleLimits {
  perAccountAndIp: number;
  perIp: number;
  windowSeconds: number;
}

export const defaultLimits: ThrottleLimits = { perAccountAndIp: 10, perIp: 100, windowSeconds: 15 * 60 };

export function createLoginThrottle(counter: Counter, limits: ThrottleLimits = defaultLimits) {
  const keys = (login: string, ip: string) => ({ pair: `login:pair:${login}|${ip}`, ip: `login:ip:${ip}` });
  return {
    /**
     * Throws rate_limited when this login or this address has failed too often; otherwise answers
     * how many failures of this login from this address are counted (for `succeeded`).
     */
    async check(login: string, ip: string): Promise<number> {
      const k = keys(login, ip);
      const [pair, perIp] = await Promise.all([counter.get(k.pair), counter.get(k.ip)]);
      if (pair >= limits.perAccountAndIp || perIp >= limits.perIp) {
        const retry = await counter.ttl(pair >= limits.perAccountAndIp ? k.pair : k.ip);
        throw new AppError("rate_limited", `too many failed logins from this address; try again in ${Math.ceil(retry / 60)} min or reset the password`, [], retry);
      }
      return pair;
    },
    async failed(login: string, ip: string): Promise<void> {
      const k = keys(login, ip);
      await Promise.all([counter.hit(k.pair, limits.windowSeconds), counter.hit(k.ip, limits.windowSeconds)]);
    },
    /**
     * A successful login forgives this address's failures for the login. `failures` is what `check`
     * answered: with none counted there is nothing to forgive, so an ordinary login costs the
     * counter (Redis in a cluster) no write. A failure counted between the check and the success
     * then stays counted: stricter, never looser.
     */
    async succeeded(login: string, ip: string, failures: number): Promise<void> {
      if (failures > 0) await counter.reset(keys(login, ip).pair);
    },
  };
}

export type LoginThrottle = ReturnType<typeof createLoginThrottle>;
