import assert from "node:assert/strict";
import { test } from "node:test";
import { AppError } from "@crm/kit";
import { Role } from "@crm/gen/crm/auth/v1/auth_pb";
import { UserStatus } from "@crm/gen/crm/admin/v1/admin_pb";
import { UserRole } from "@crm/gen/crm/db/v1/db_auth_pb";
import { checkRows, newRoleOf, userIdOf } from "./rules.js";
import { validateList } from "./validation.js";

const row = (n: number, over: Partial<{ email: string; phone: string; role: Role; name: string }> = {}) => ({ email: `u${n}@example.com`, phone: "", role: Role.UNSPECIFIED, name: `User ${n}`, ...over });

test("rows are judged one by one; repeats of an earlier valid row are invalid", () => {
  const checks = checkRows(
    [
      row(0, { email: "  MixedCase@Example.COM ", phone: "+1 (415) 555-2671" }),
      row(1, { email: "not-an-email" }),
      row(2, { email: "mixedcase@example.com" }),
      row(3, { phone: "+14155552671" }),
      row(4, { name: "   " }),
      row(5, { name: "n".repeat(201), phone: "123" }),
      row(6, { role: Role.OWNER }),
      row(7, { role: Role.ADMIN }),
      row(8, { role: 9 as Role }),
      row(9, { email: "" }),
    ],
    "admin",
  );
  assert.deepEqual(checks[0], { index: 0, email: "mixedcase@example.com", row: { email: "mixedcase@example.com", phone: "+14155552671", name: "User 0", role: "member" } });
  assert.equal(checks[1]!.reason, "email: must be a valid e-mail address like name@example.com");
  assert.equal(checks[2]!.reason, "email: repeats row 0");
  assert.equal(checks[3]!.reason, "phone: repeats row 0");
  assert.equal(checks[4]!.reason, "name: is required");
  assert.equal(checks[5]!.reason, "phone: must be in E.164 format like +14155552671; name: must be at most 200 characters");
  assert.match(checks[6]!.reason!, /^role: only an owner can add owners/);
  assert.equal(checks[7]!.row!.role, "admin");
  assert.match(checks[8]!.reason!, /^role: must be/);
  assert.equal(checks[9]!.reason, "email: is required");
  assert.equal(checkRows([row(0, { role: Role.OWNER })], "owner")[0]!.row!.role, "owner");
  // A row repeating an INVALID earlier row is judged on its own.
  const again = checkRows([row(0, { name: "" }), row(0)], "owner");
  assert.ok(again[0]!.reason && again[1]!.row);
});

test("0 or more than 1000 rows is invalid_argument for the call", () => {
  for (const n of [0, 1001]) {
    assert.throws(() => checkRows(Array.from({ length: n }, (_, i) => row(i)), "owner"), (e: unknown) => e instanceof AppError && e.violations[0]!.field === "users");
  }
  assert.equal(checkRows(Array.from({ length: 1000 }, (_, i) => row(i)), "owner").length, 1000);
});

test("list, user id and role rules", () => {
  assert.deepEqual(validateList({ query: "  ann ", pageSize: 0, pageToken: "", status: UserStatus.UNSPECIFIED }), { query: "ann", pageSize: 50, pageToken: "", status: UserStatus.UNSPECIFIED });
  assert.throws(() => validateList({ query: "", pageSize: 501, pageToken: "", status: UserStatus.UNSPECIFIED }), /pageSize/);
  assert.throws(() => validateList({ query: "", pageSize: -1, pageToken: "", status: 7 as UserStatus }), /pageSize.*status/);
  assert.throws(() => userIdOf("nope"), /userId: must be a user id/);
  assert.throws(() => userIdOf(""), /userId: is required/);
  assert.throws(() => newRoleOf(Role.UNSPECIFIED), /role: must be/);
  assert.equal(newRoleOf(Role.ADMIN), "admin");
  // The store's enum (crm.db.v1.UserRole) numbers the roles as crm.auth.v1.Role does.
  assert.equal(newRoleOf(UserRole.OWNER), "owner");
});
