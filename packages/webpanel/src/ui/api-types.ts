/**
 * The Brain's API as the panel sees it: the types come from the brain and core
 * packages (never copied) and are mapped to their JSON form (dates travel as
 * ISO strings).
 */
import type {
  InstanceStatsSample,
  InstanceView,
  LogLineEvent,
  NodeView,
  TemplateDetails,
} from "@orchestrator/brain-server";
import type { ApiToken, AuditEntry, LoggedEvent, Role, Template, User } from "@orchestrator/core";

/** `T` as it arrives over JSON: every Date is an ISO string. */
export type Wire<T> = T extends Date
  ? string
  : T extends readonly (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

export type ApiInstance = Wire<InstanceView>;
export type ApiNode = Wire<NodeView>;
export type ApiNodeDetail = ApiNode & { instances: ApiInstance[] };
export type ApiTemplate = Wire<Template>;
export type ApiTemplateDetails = Wire<TemplateDetails>;
export type ApiEvent = Wire<LoggedEvent>;
export type ApiLogLine = LogLineEvent;
/** One `stats` event of `GET /instances/:id/stats` (already JSON-shaped). */
export type ApiStatsSample = InstanceStatsSample;
export type ApiUser = Wire<User>;
export type ApiTokenInfo = Wire<ApiToken>;
export type ApiAuditEntry = Wire<AuditEntry>;
export type ApiRole = Role;

export interface ApiMe {
  user: ApiUser;
  via: "session" | "token";
  csrfToken?: string;
  scopes?: string[];
}

export interface ApiPage<T> {
  items: T[];
  next?: string | null;
}

/** One problem with a request, as the API reports it (`details.issues`). */
export interface ApiIssue {
  path: string;
  message: string;
}

export interface ApiErrorBody {
  error: { code: string; message: string; details: Record<string, unknown> };
}
