/**
 * A guard around any plug-in (runtime, storage, repositories): `init` runs once
 * even under concurrent callers, a failed init is retried on the next use, and
 * nothing can be used after `destroy`. Third-party adapters get this for free.
 */
import { OrchestratorError } from "./errors/orchestrator-error.js";
import type { Plugin } from "./ports/plugin.js";

export class PluginStateError extends OrchestratorError {
  constructor(message: string) {
    super("PLUGIN_STATE", message);
    this.name = "PluginStateError";
  }
}

type State = "new" | "initializing" | "ready" | "destroying" | "destroyed";

/**
 * Returns a proxy of `plugin` with the same interface. Every method call first
 * waits for `init` (started on first use), so guarded methods always return
 * promises: use it for ports whose methods are async. Non-function members
 * (like `capabilities`) pass through unchanged.
 */
export function guardPlugin<T extends Plugin>(plugin: T, name = "plugin"): T {
  let state: State = "new";
  let initializing: Promise<void> | null = null;
  let destroying: Promise<void> | null = null;

  const init = (options?: { signal?: AbortSignal }): Promise<void> => {
    if (state === "destroying" || state === "destroyed") {
      return Promise.reject(new PluginStateError(`${name} was destroyed`));
    }
    if (state === "ready") return Promise.resolve();
    if (initializing) return initializing;
    state = "initializing";
    initializing = (async () => {
      try {
        await plugin.init?.(options);
        state = "ready";
      } catch (error) {
        state = "new"; // the next use tries again
        throw error;
      } finally {
        initializing = null;
      }
    })();
    return initializing;
  };

  const destroy = (): Promise<void> => {
    if (destroying) return destroying;
    const wasUsed = state !== "new";
    state = "destroying";
    destroying = (async () => {
      try {
        if (wasUsed) await plugin.destroy?.();
      } finally {
        state = "destroyed";
      }
    })();
    return destroying;
  };

  return new Proxy(plugin, {
    get(target, property, receiver) {
      if (property === "init") return init;
      if (property === "destroy") return destroy;
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (state === "destroying" || state === "destroyed") {
          return Promise.reject(
            new PluginStateError(`${name} was destroyed; cannot call ${String(property)}`),
          );
        }
        if (state === "ready") return value.apply(target, args);
        return init().then(() => value.apply(target, args));
      };
    },
  });
}
