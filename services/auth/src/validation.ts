/** Input rules for the auth RPCs. Pure functions: they return normalised values or throw `invalid`. */
import { invalid, type Violation } from "@crm/kit";
import { normaliseEmail, normalisePhone } from "@crm/contracts/logins";
import { passwordProblem } from "./passwords.js";

export interface RegisterInput {
  companyName: string;
  address: string;
  email: string;
  phone: string;
  password: string;
  ownerName: string;
  locale: string;
}

export const locales = ["en", "ru"] as const;

function text(v: Violation[], field: string, raw: string, min: number, max: number): string {
  const t = raw.trim();
  if (t.length < min) v.push({ field, description: min === 1 ? "is required" : `must be at least ${min} characters` });
  else if ([...t].length > max) v.push({ field, description: `must be at most ${max} characters` });
  return t;
}

export function validateRegister(req: RegisterInput): RegisterInput {
  const v: Violation[] = [];
  const companyName = text(v, "companyName", req.companyName, 1, 200);
  const ownerName = text(v, "ownerName", req.ownerName, 1, 200);
  const address = text(v, "address", req.address, 0, 500);
  const email = normaliseEmail(req.email);
  if (!email) v.push({ field: "email", description: req.email ? "must be a valid e-mail address like name@example.com" : "is required" });
  let phone = "";
  if (req.phone.trim()) {
    phone = normalisePhone(req.phone) ?? "";
    if (!phone) v.push({ field: "phone", description: "must be in E.164 format like +14155552671" });
  }
  const problem = passwordProblem(req.password, { email: email ?? "", phone });
  if (problem) v.push({ field: "password", description: problem });
  const locale = req.locale.trim().toLowerCase() || "en";
  if (!(locales as readonly string[]).includes(locale)) v.push({ field: "locale", description: `must be one of ${locales.join(", ")}` });
  if (v.length) throw invalid(v);
  return { companyName, ownerName, address, email: email!, phone, password: req.password, locale };
}

export type LoginId = { email: string; phone?: undefined } | { phone: string; email?: undefined };

/** Exactly one of email or phone. Malformed logins are invalid_argument (they cannot exist). */
export function validateLogin(req: { email: string; phone: string }, password?: string): LoginId {
  const v: Violation[] = [];
  const hasEmail = req.email.trim() !== "";
  const hasPhone = req.phone.trim() !== "";
  let id: LoginId | undefined;
  if (hasEmail === hasPhone) v.push({ field: "email", description: "give exactly one of email or phone" });
  else if (hasEmail) {
    const email = normaliseEmail(req.email);
    if (email) id = { email };
    else v.push({ field: "email", description: "must be a valid e-mail address like name@example.com" });
  } else {
    const phone = normalisePhone(req.phone);
    if (phone) id = { phone };
    else v.push({ field: "phone", description: "must be in E.164 format like +14155552671" });
  }
  if (password !== undefined) {
    if (password === "") v.push({ field: "password", description: "is required" });
    else if (password.length > 1024) v.push({ field: "password", description: "is too long" });
  }
  if (v.length) throw invalid(v);
  return id!;
}
