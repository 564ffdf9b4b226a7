/**
 * Request checks of the records service: every bad field of a request at once (field paths in
 * the proto's JSON names), before anything reaches the store. Built from the domain's rules
 * (rules.ts), which the store applies again when it normalises what it writes.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Violation } from "@crm/kit";
import type { CreateCompanyRequest, UpdateCompanyRequest } from "@crm/gen/crm/records/v1/company_pb";
import type { CreateDealRequest, MoveDealRequest, UpdateDealRequest } from "@crm/gen/crm/records/v1/deal_pb";
import type { CreatePersonRequest, UpdatePersonRequest } from "@crm/gen/crm/records/v1/person_pb";
import type {
  CreatePipelineRequest, CreateStageRequest, DeleteStageRequest, ReorderStagesRequest, UpdatePipelineRequest, UpdateStageRequest,
} from "@crm/gen/crm/records/v1/pipeline_pb";
import {
  LIMITS, checkCompany, checkDeal, checkPerson, checkPipelineName, checkStage, decodePageToken, isId, normalId, optionalId, pageSizeViolation,
  parseEtag, parseListQuery, parseMask, queryFingerprint, requiredId, textViolation, updatable, type ListParams, type ObjectKind,
} from "./rules.js";
import { ObjectType } from "@crm/gen/crm/records/v1/common_pb";
import type { ArchiveFieldRequest, CreateFieldRequest, UpdateFieldRequest } from "@crm/gen/crm/records/v1/field_pb";
import type { CreateNoteRequest, UpdateNoteRequest } from "@crm/gen/crm/records/v1/note_pb";
import type { CreateTaskRequest, UpdateTaskRequest } from "@crm/gen/crm/records/v1/task_pb";
import { checkNote, checkTask } from "./rules.js";
import { checkCustomShape, checkFieldChange, checkNewField } from "./rules.js";

type Out = Violation[];

function etag(out: Out, value: string, field = "etag"): void {
  if (parseEtag(value) === "bad") out.push({ field, description: "is not an etag this service returned: read the record again and send its etag" });
}

function present<T>(out: Out, value: T | undefined, field: string): value is T {
  if (value === undefined) out.push({ field, description: "is required" });
  return value !== undefined;
}

/** Get, Delete, Undelete, Purge: an id, and an etag where there is one. */
export function byId(req: { id: string; etag?: string }): Violation[] {
  const v: Violation[] = [];
  requiredId(v, "id", req.id, "record");
  if (req.etag !== undefined) etag(v, req.etag);
  return v;
}

export function list(kind: ObjectKind, req: ListParams): Violation[] {
  const v: Violation[] = [];
  parseListQuery(kind, req, v);
  return v;
}

export const company = {
  create(req: CreateCompanyRequest): Violation[] {
    const v: Violation[] = [];
    optionalId(v, "requestId", req.requestId);
    if (present(v, req.company, "company")) {
      checkCompany(req.company, updatable.company, v);
      customShape(v, req.company.custom, updatable.company, "company");
    }
    return v;
  },
  update(req: UpdateCompanyRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("company", req.updateMask?.paths ?? [], v);
    if (present(v, req.company, "company")) {
      requiredId(v, "company.id", req.company.id, "company");
      etag(v, req.company.etag, "company.etag");
      checkCompany(req.company, paths, v);
      customShape(v, req.company.custom, paths, "company");
    }
    return v;
  },
};

export const person = {
  create(req: CreatePersonRequest): Violation[] {
    const v: Violation[] = [];
    optionalId(v, "requestId", req.requestId);
    if (present(v, req.person, "person")) {
      checkPerson(req.person, updatable.person, v);
      customShape(v, req.person.custom, updatable.person, "person");
    }
    return v;
  },
  update(req: UpdatePersonRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("person", req.updateMask?.paths ?? [], v);
    if (present(v, req.person, "person")) {
      requiredId(v, "person.id", req.person.id, "person");
      etag(v, req.person.etag, "person.etag");
      checkPerson(req.person, paths, v);
      customShape(v, req.person.custom, paths, "person");
    }
    return v;
  },
};

export const deal = {
  create(req: CreateDealRequest): Violation[] {
    const v: Violation[] = [];
    optionalId(v, "requestId", req.requestId);
    if (!present(v, req.deal, "deal")) return v;
    checkDeal(req.deal, updatable.deal, v);
    customShape(v, req.deal.custom, updatable.deal, "deal");
    const stage = optionalId(v, "deal.stageId", req.deal.stageId);
    const pipeline = optionalId(v, "deal.pipelineId", req.deal.pipelineId);
    if (!stage && !pipeline && !v.some((x) => x.field === "deal.stageId" || x.field === "deal.pipelineId")) {
      v.push({ field: "deal.stageId", description: "is required: the stage to put the deal in (or pipelineId, for its first stage)" });
    }
    return v;
  },
  update(req: UpdateDealRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("deal", req.updateMask?.paths ?? [], v);
    if (present(v, req.deal, "deal")) {
      requiredId(v, "deal.id", req.deal.id, "deal");
      etag(v, req.deal.etag, "deal.etag");
      checkDeal(req.deal, paths, v);
      customShape(v, req.deal.custom, paths, "deal");
    }
    return v;
  },
  move(req: MoveDealRequest): Violation[] {
    const v: Violation[] = [];
    const id = requiredId(v, "id", req.id, "deal");
    optionalId(v, "stageId", req.stageId);
    const after = optionalId(v, "afterDealId", req.afterDealId);
    const before = optionalId(v, "beforeDealId", req.beforeDealId);
    if (isId(after) && isId(before)) v.push({ field: "beforeDealId", description: "set afterDealId or beforeDealId, not both" });
    if ((after || before) && req.top) v.push({ field: "top", description: "top places the deal without a neighbour: leave afterDealId and beforeDealId empty" });
    if (isId(id) && (after === id || before === id)) v.push({ field: after === id ? "afterDealId" : "beforeDealId", description: "names the deal being moved" });
    const lost = textViolation(req.lostReason.trim(), "lostReason", LIMITS.lostReason);
    if (lost) v.push(lost);
    etag(v, req.etag);
    return v;
  },
};

export const pipeline = {
  create(req: CreatePipelineRequest): Violation[] {
    const v: Violation[] = [];
    if (!present(v, req.pipeline, "pipeline")) return v;
    checkPipelineName(req.pipeline.name, v);
    if (req.pipeline.stages.length > LIMITS.stages) v.push({ field: "pipeline.stages", description: `may hold at most ${LIMITS.stages} stages` });
    const names = new Set<string>();
    req.pipeline.stages.slice(0, LIMITS.stages).forEach((s, i) => {
      const { name } = checkStage(s, ["name", "probability", "kind"], v, `pipeline.stages[${i}]`);
      if (name && names.has(name.toLowerCase())) v.push({ field: `pipeline.stages[${i}].name`, description: "names another stage of the pipeline (names are compared without regard to case)" });
      if (name) names.add(name.toLowerCase());
    });
    return v;
  },
  list(req: { pageSize: number; pageToken: string }): Violation[] {
    const v: Violation[] = [];
    const size = pageSizeViolation(req.pageSize);
    if (size) v.push(size);
    decodePageToken(req.pageToken, queryFingerprint("pipeline", []), 1, v);
    return v;
  },
  update(req: UpdatePipelineRequest): Violation[] {
    const v: Violation[] = [];
    parseMask("pipeline", req.updateMask?.paths ?? [], v);
    if (present(v, req.pipeline, "pipeline")) {
      requiredId(v, "pipeline.id", req.pipeline.id, "pipeline");
      etag(v, req.pipeline.etag, "pipeline.etag");
      checkPipelineName(req.pipeline.name, v);
    }
    return v;
  },
  createStage(req: CreateStageRequest): Violation[] {
    const v: Violation[] = [];
    requiredId(v, "pipelineId", req.pipelineId, "pipeline");
    if (present(v, req.stage, "stage")) checkStage(req.stage, ["name", "probability", "kind"], v);
    if (req.index !== undefined && req.index < 0) v.push({ field: "index", description: "must be 0 or more (unset: at the end)" });
    etag(v, req.etag);
    return v;
  },
  updateStage(req: UpdateStageRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("stage", req.updateMask?.paths ?? [], v);
    if (present(v, req.stage, "stage")) {
      requiredId(v, "stage.id", req.stage.id, "stage");
      checkStage(req.stage, paths, v);
    }
    etag(v, req.etag);
    return v;
  },
  deleteStage(req: DeleteStageRequest): Violation[] {
    const v: Violation[] = [];
    const id = requiredId(v, "id", req.id, "stage");
    const to = optionalId(v, "moveDealsToStageId", req.moveDealsToStageId);
    if (to && to === id) v.push({ field: "moveDealsToStageId", description: "names the stage being removed: name another stage of the pipeline" });
    etag(v, req.etag);
    return v;
  },
  reorderStages(req: ReorderStagesRequest): Violation[] {
    const v: Violation[] = [];
    requiredId(v, "pipelineId", req.pipelineId, "pipeline");
    if (req.stageIds.length === 0 || req.stageIds.length > LIMITS.stages) v.push({ field: "stageIds", description: `must list every stage of the pipeline once (1..${LIMITS.stages})` });
    const seen = new Set<string>();
    req.stageIds.slice(0, LIMITS.stages).forEach((raw, i) => {
      const id = requiredId(v, `stageIds[${i}]`, raw, "stage");
      if (isId(id) && seen.has(id)) v.push({ field: `stageIds[${i}]`, description: "names a stage twice" });
      seen.add(id);
    });
    etag(v, req.etag);
    return v;
  },
};

const kinds: Partial<Record<ObjectType, ObjectKind>> = {
  [ObjectType.COMPANY]: "company",
  [ObjectType.PERSON]: "person",
  [ObjectType.DEAL]: "deal",
  [ObjectType.TASK]: "task",
  [ObjectType.NOTE]: "note",
};

export function timeline(req: { objectType: ObjectType; recordId: string; pageSize: number; pageToken: string }): Violation[] {
  const v: Violation[] = [];
  const kind = kinds[req.objectType];
  if (!kind) v.push({ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, _PERSON, _DEAL, _TASK or _NOTE" });
  const id = requiredId(v, "recordId", req.recordId, "record");
  const size = pageSizeViolation(req.pageSize);
  if (size) v.push(size);
  if (kind && isId(id)) decodePageToken(req.pageToken, queryFingerprint("timeline", [kind, normalId(id)]), 1, v);
  return v;
}

// Custom values: the service checks their names and size; the store checks them against the
// definitions (read in its transaction). The handlers add the definitions' verdict when the
// request is refused for other fields anyway (records-service.ts), so every bad field is named.

/** The custom values a create or update of a company, person or deal writes, for shape checks. */
export function customShape(v: Violation[], custom: JsonObject | undefined, paths: readonly string[], at: string): void {
  if (paths.some((p) => p === "custom" || p.startsWith("custom."))) checkCustomShape(custom, v, at);
}

const fieldObjects = new Set([ObjectType.COMPANY, ObjectType.PERSON, ObjectType.DEAL]);

export const field = {
  create(req: CreateFieldRequest): Violation[] {
    const v: Violation[] = [];
    if (!present(v, req.field, "field")) return v;
    if (!fieldObjects.has(req.field.objectType)) v.push({ field: "field.objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL" });
    checkNewField(req.field, v);
    return v;
  },
  update(req: UpdateFieldRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("field", req.updateMask?.paths ?? [], v);
    if (present(v, req.field, "field")) {
      requiredId(v, "field.id", req.field.id, "field");
      etag(v, req.field.etag, "field.etag");
      // The type is the stored field's: options are checked for their form here, for the type there.
      checkFieldChange(req.field, paths, undefined, v);
    }
    return v;
  },
  list(req: { objectType: ObjectType }): Violation[] {
    if (req.objectType === ObjectType.UNSPECIFIED || fieldObjects.has(req.objectType)) return [];
    return [{ field: "objectType", description: "must be OBJECT_TYPE_COMPANY, OBJECT_TYPE_PERSON or OBJECT_TYPE_DEAL, or unset for all" }];
  },
  archive(req: ArchiveFieldRequest): Violation[] {
    return byId(req);
  },
};

export const task = {
  create(req: CreateTaskRequest): Violation[] {
    const v: Violation[] = [];
    optionalId(v, "requestId", req.requestId);
    if (present(v, req.task, "task")) checkTask(req.task, updatable.task.filter((p) => p !== "owner_id"), v);
    return v;
  },
  update(req: UpdateTaskRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("task", req.updateMask?.paths ?? [], v);
    if (present(v, req.task, "task")) {
      requiredId(v, "task.id", req.task.id, "task");
      etag(v, req.task.etag, "task.etag");
      checkTask(req.task, paths, v);
    }
    return v;
  },
};

export const note = {
  create(req: CreateNoteRequest): Violation[] {
    const v: Violation[] = [];
    optionalId(v, "requestId", req.requestId);
    if (present(v, req.note, "note")) checkNote(req.note, updatable.note, v);
    return v;
  },
  update(req: UpdateNoteRequest): Violation[] {
    const v: Violation[] = [];
    const paths = parseMask("note", req.updateMask?.paths ?? [], v);
    if (present(v, req.note, "note")) {
      requiredId(v, "note.id", req.note.id, "note");
      etag(v, req.note.etag, "note.etag");
      checkNote(req.note, paths, v);
    }
    return v;
  },
};
