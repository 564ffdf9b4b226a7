/**
 * The API-key scope table for the CRM's cross-object services, method by method from the generated
 * descriptors (read-only as the kit decides it: NO_SIDE_EFFECTS or a server stream): ReportService's
 * reads need `reports:read` and its writes (admin-only settings) `admin`; PermissionService needs
 * `admin` throughout. The kit refusing and admitting keys with them: services/auth/src/api-keys.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { DealService } from "@crm/gen/crm/records/v1/deal_pb";
import { PermissionService } from "@crm/gen/crm/records/v1/permission_pb";
import { ReportService } from "@crm/gen/crm/records/v1/report_pb";
import { SearchService } from "@crm/gen/crm/records/v1/search_pb";
import { ADMIN_SCOPE, REPORTS_READ_SCOPE, apiKeyScopes, isApiKeyScope, scopeNeeded } from "./scopes.js";

const needs = (s: DescService) =>
  Object.fromEntries(
    s.methods.map((m) => [m.name, scopeNeeded(s.typeName, m.name, m.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS || m.methodKind === "server_streaming")]),
  );

test("ReportService: reports and currency settings with reports:read; changing the settings with admin", () => {
  assert.deepEqual(needs(ReportService), {
    GetPipelineValue: REPORTS_READ_SCOPE,
    GetWinRate: REPORTS_READ_SCOPE,
    GetTimeInStage: REPORTS_READ_SCOPE,
    GetCurrencySettings: REPORTS_READ_SCOPE,
    SetBaseCurrency: ADMIN_SCOPE,
    SetExchangeRate: ADMIN_SCOPE,
    DeleteExchangeRate: ADMIN_SCOPE,
    ListExchangeRates: REPORTS_READ_SCOPE,
  });
});

test("PermissionService: admin only, its read too", () => {
  assert.deepEqual(needs(PermissionService), { GetRecordPermissions: ADMIN_SCOPE, SetMembersEditAll: ADMIN_SCOPE });
});

test("reports:read is a key scope, reports:write is not; the rest of the table is as it was", () => {
  assert.ok(isApiKeyScope("reports:read"));
  assert.ok(!isApiKeyScope("reports:write") && !isApiKeyScope("permissions:read"));
  assert.equal(apiKeyScopes.at(-1), ADMIN_SCOPE, "admin stays last");
  assert.equal(needs(DealService).ListDeals, "deals:read");
  assert.equal(needs(DealService).MoveDeal, "deals:write");
  assert.equal(needs(SearchService).Search, undefined, "search still needs a user's session");
  assert.equal(scopeNeeded("crm.auth.v1.AuthService", "Logout", false), undefined);
});
