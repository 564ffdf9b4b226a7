/**
 * Passwords per NIST SP 800-63B: 8..128 characters, no composition rules, refused when common.
 * Hashing: argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane).
 */
import { hash, verify } from "@node-rs/argon2";
import { dictionary } from "@zxcvbn-ts/language-common";

export const argonOptions = { algorithm: 2 /* Algorithm.Argon2id (an ambient const enum) */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

const common = new Set((dictionary["passwords-common"] as string[]).filter((p) => p.length >= 8));

/** Why a password is refused, or undefined when it is acceptable. */
export function passwordProblem(password: string, login?: { email?: string; phone?: string }): string | undefined {
  const length = [...password].length;
  if (length < 8) return "must be at least 8 characters";
  if (length > 128) return "must be at most 128 characters";
  const lower = password.toLowerCase();
  if (common.has(lower)) return "is one of the most common passwords; choose another (a few unrelated words work well)";
  if (login?.email && lower === login.email.toLowerCase()) return "must not be your e-mail address";
  if (login?.phone && password === login.phone) return "must not be your phone number";
  return undefined;
}

export const hashPassword = (password: string) => hash(password, argonOptions);

export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  try {
    return await verify(phc, password);
  } catch {
    return false;
  }
}

/** Verified against when the account does not exist, so both failures take the same time. */
export const dummyHash = await hashPassword("not-a-real-password-only-for-timing");
