/**
 * The crm.records.v1 handlers of ViewService: each checks its request (every bad field at once,
 * nothing sent on) and forwards it to dbservice's DbRecordsService, which runs it as the caller
 * (who sees and changes which view is row-level security's).
 */
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { AppError, invalid, type Violation } from "@crm/kit";
import type { DbRecordsService } from "@crm/gen/crm/db/v1/db_records_pb";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { ViewService, View } from "@crm/gen/crm/records/v1/view_pb";
import { checkView, decodePageToken, pageSizeViolation, parseEtag, parseViewMask, queryFingerprint, requiredId, viewKind, viewPaths } from "./rules.js";

const ok = (v: Violation[]) => {
  if (v.length) throw invalid(v);
};

function answer<T>(res: { response?: T }): T {
  if (!res.response) throw new AppError("internal", "the records store sent an empty answer");
  return res.response;
}

function etag(v: Violation[], value: string, field: string) {
  if (parseEtag(value) === "bad") v.push({ field, description: "is not an etag this service returned: read the view again and send its etag" });
}

/** A view's fields as a create or update sends them; the object type of an update is the stored one (checked by the store). */
function viewViolations(view: View | undefined, paths: readonly (typeof viewPaths)[number][], creating: boolean, v: Violation[]): void {
  if (!view) {
    v.push({ field: "view", description: "is required" });
    return;
  }
  if (!creating) {
    requiredId(v, "view.id", view.id, "view");
    etag(v, view.etag, "view.etag");
  }
  if (creating) {
    const kind = viewKind(view.objectType, v);
    if (kind) checkView(view, kind, paths, view.showDeleted, v);
  } else if (paths.includes("name")) {
    // The rest depends on the view's object type, which the store knows: it checks them there.
    checkView(view, "company", ["name"], false, v);
  }
}

export function viewService(db: Client<typeof DbRecordsService>): ServiceImpl<typeof ViewService> {
  return {
    async createView(request) {
      const v: Violation[] = [];
      viewViolations(request.view, viewPaths, true, v);
      ok(v);
      return answer(await db.createViewDB({ request }));
    },
    async getView(request) {
      const v: Violation[] = [];
      requiredId(v, "id", request.id, "view");
      ok(v);
      return answer(await db.getViewDB({ request }));
    },
    async listViews(request) {
      const v: Violation[] = [];
      const bad = pageSizeViolation(request.pageSize);
      if (bad) v.push(bad);
      const kind = request.objectType === ObjectType.UNSPECIFIED ? null : viewKind(request.objectType, v, "objectType");
      if (kind !== undefined) decodePageToken(request.pageToken, queryFingerprint("view", [kind]), 2, v);
      ok(v);
      return answer(await db.listViewsDB({ request }));
    },
    async updateView(request) {
      const v: Violation[] = [];
      const paths = parseViewMask(request.updateMask?.paths ?? [], v);
      viewViolations(request.view, paths, false, v);
      ok(v);
      return answer(await db.updateViewDB({ request }));
    },
    async deleteView(request) {
      const v: Violation[] = [];
      requiredId(v, "id", request.id, "view");
      etag(v, request.etag, "etag");
      ok(v);
      return answer(await db.deleteViewDB({ request }));
    },
  };
}
