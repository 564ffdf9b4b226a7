/**
 * Passwords per NIST SP 800-63B: 8..128 characters, no composition rules, refused when common.
 * Hashing: argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), at most one per CPU at once.
 */
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { hash, verify } from "@node-rs/argon2";

export const argonOptions = { algorithm: 2 /* Algorithm.Argon2id (an ambient const enum) */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

let common: Set<string> | undefined;
/**
 * The common passwords (zxcvbn's list, those of 8 characters or more), loaded when a password is
 * first checked: the list costs ≈ 0.1 s and a few MB at start, and most auth processes (logins,
 * refreshes, checks) never check a new password.
 */
function commonPasswords(): Set<string> {
  if (!common) {
    const { dictionary } = createRequire(import.meta.url)("@zxcvbn-ts/language-common") as typeof import("@zxcvbn-ts/language-common");
    common = new Set((dictionary["passwords-common"] as string[]).filter((p) => p.length >= 8));
  }
  return common;
}

/** Why a password is refused, or undefined when it is acceptable. */
export function passwordProblem(password: string, login?: { email?: string; phone?: string }): string | undefined {
  const length = [...password].length;
  if (length < 8) return "must be at least 8 characters";
  if (length > 128) return "must be at most 128 characters";
  const lower = password.toLowerCase();
  if (commonPasswords().has(lower)) return "is one of the most common passwords; choose another (a few unrelated words work well)";
  if (login?.email && lower === login.email.toLowerCase()) return "must not be your e-mail address";
  if (login?.phone && password === login.phone) return "must not be your phone number";
  return undefined;
}

/** Runs at most `n` of the given operations at once; the others wait their turn, first come first served. */
export function concurrencyLimit(n: number) {
  let free = n;
  const waiting: (() => void)[] = [];
  return async function run<T>(op: () => Promise<T>): Promise<T> {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await op();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

/**
 * At most one argon2 operation per CPU at once. More (libuv's pool runs 4) only time-slice the same
 * cores and evict each other's 19 MiB from the caches: raw verifies on 2 CPUs, 8 asked for at once,
 * ran 170/s at 11.4 ms CPU each with 4 at once, 240/s at 8.2 ms with 2. Every hash and verify of the
 * process (the unknown-account dummy verify too) queues here alike.
 */
const argonSlots = concurrencyLimit(availableParallelism());

export const hashPassword = (password: string) => argonSlots(() => hash(password, argonOptions));

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await argonSlots(() => verify(phc, password));
  } catch {
    return false;
  }
}

/** Verified against when the account does not exist, so both failures take the same time. */
export const dummyHash = await hashPassword("not-a-real-password-only-for-timing");
