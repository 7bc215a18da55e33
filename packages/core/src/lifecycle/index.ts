export * from "./instance-lifecycle.js";
export * from "./node-lifecycle.js";
export * from "./restart-policy.js";
