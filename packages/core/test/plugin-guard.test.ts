import { describe, expect, it } from "vitest";
import { guardPlugin, OrchestratorError, type Plugin } from "../src/index.js";

class Recorder implements Plugin {
  inits = 0;
  destroys = 0;
  failNextInit = false;
  readonly capabilities = { fast: true };

  async init(): Promise<void> {
    this.inits += 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.failNextInit) {
      this.failNextInit = false;
      throw new Error("connection refused");
    }
  }

  async destroy(): Promise<void> {
    this.destroys += 1;
  }

  async read(key: string): Promise<string> {
    return `value of ${key}`;
  }
}

describe("guardPlugin", () => {
  it("initialises once, even for concurrent first calls", async () => {
    const inner = new Recorder();
    const plugin = guardPlugin(inner);
    const results = await Promise.all([plugin.read("a"), plugin.read("b"), plugin.init()]);
    expect(results.slice(0, 2)).toEqual(["value of a", "value of b"]);
    expect(inner.inits).toBe(1);
    await plugin.read("c");
    expect(inner.inits).toBe(1);
  });

  it("retries init after a failed one", async () => {
    const inner = new Recorder();
    inner.failNextInit = true;
    const plugin = guardPlugin(inner);
    await expect(plugin.read("a")).rejects.toThrow("connection refused");
    await expect(plugin.read("a")).resolves.toBe("value of a");
    expect(inner.inits).toBe(2);
  });

  it("refuses every use after destroy, and destroys once", async () => {
    const inner = new Recorder();
    const plugin = guardPlugin(inner, "test storage");
    await plugin.read("a");
    await Promise.all([plugin.destroy(), plugin.destroy()]);
    expect(inner.destroys).toBe(1);
    const error = await plugin.read("a").catch((caught: unknown) => caught);
    expect(OrchestratorError.hasCode(error, "PLUGIN_STATE")).toBe(true);
    expect(String(error)).toContain("test storage was destroyed");
    await expect(plugin.init()).rejects.toThrow(/destroyed/);
  });

  it("does not call destroy on a plugin that was never initialised", async () => {
    const inner = new Recorder();
    await guardPlugin(inner).destroy();
    expect(inner.destroys).toBe(0);
  });

  it("passes non-function members through", () => {
    expect(guardPlugin(new Recorder()).capabilities).toEqual({ fast: true });
  });
});
