/** Pieces shared by runtime implementations: policy, logs, readiness, exit statuses. */
export * from "./console-line.js";
export * from "./directory-size.js";
export * from "./exit-listeners.js";
export * from "./exit-status.js";
export * from "./line-splitter.js";
export * from "./log-backlog.js";
export * from "./readiness.js";
export * from "./runtime-spec-policy.js";
