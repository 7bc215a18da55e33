/**
 * The agent protocol additions on the Brain: live stats (samples up, SSE down),
 * one agent session per node (a duplicate process is refused and operators
 * are alerted), and runtime availability (shown on nodes, respected by the
 * scheduler). SQLite in memory, fake clock, a real listening socket for SSE.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  AgentCommand,
  InstanceStatsSample,
  InstanceTrigger,
  JoinResponse,
  SyncRequest,
} from "@orchestrator/core";
import { FakeClock } from "@orchestrator/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOKENS } from "../src/brain.js";
import { AgentSessions, agentSessionWindowMs } from "../src/services/agent-sessions.js";
import type { InstanceStats } from "../src/services/instance-stats.js";
import { createHarness, type Harness, helloTemplate, nodeReport } from "./brain-harness.js";
import { openSse } from "./sse-client.js";

const SESSION_A = "session-aaaaaaaaaaaa";
const SESSION_B = "session-bbbbbbbbbbbb";
const hooks: { type: string; alert?: Record<string, unknown> }[] = [];

let h: Harness;
let url: string;
let hookServer: ReturnType<typeof createServer>;

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => resolve(text));
  });
}

function openStream(path: string, token: string) {
  return openSse(`${url}${path}`, token);
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Creates an instance and walks it to RUNNING on `node` with the node's reports. */
async function runningInstance(node: JoinResponse, name: string, session = SESSION_A) {
  const created = await h.request("POST", "/api/v1/instances", {
    token: h.adminToken,
    body: { template: "hello", name, variables: { RCON_PASSWORD: "pw" } },
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  await h.brain.runLoopsOnce();
  const first = await h.sync(node.credential, { agentSessionId: session });
  const prepare = first.body.commands.find((c: AgentCommand) => c.instanceId === id)!;
  const at = h.clock.now().toISOString();
  const report = (n: number, seq: number, trigger: InstanceTrigger) =>
    nodeReport(id, at, n, trigger, seq);
  await h.sync(node.credential, {
    agentSessionId: session,
    reports: [report(1, 1, "prepare"), report(2, 2, "prepared")],
    commandResults: [{ commandId: prepare.id, ok: true }],
    inventory: [{ instanceId: id, state: "PREPARED", seq: 2, epoch: 1 }],
  });
  await h.sync(node.credential, {
    agentSessionId: session,
    reports: [report(3, 3, "start"), report(4, 4, "ready")],
    inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
  });
  const view = await h.request("GET", `/api/v1/instances/${id}`, { token: h.adminToken });
  expect(view.body.state).toBe("RUNNING");
  return { id, report };
}

function sample(instanceId: string, extra: Partial<InstanceStatsSample> = {}): InstanceStatsSample {
  return {
    instanceId,
    at: h.clock.now().toISOString(),
    cpu: 0.25,
    memoryBytes: 50 * 1024 * 1024,
    memoryLimitBytes: null,
    networkRxBytes: null,
    networkTxBytes: null,
    diskBytes: 4096,
    ...extra,
  };
}

beforeAll(async () => {
  hookServer = createServer(async (request, response) => {
    hooks.push(JSON.parse(await readBody(request)));
    response.writeHead(204).end();
  });
  await new Promise<void>((resolve) => hookServer.listen(0, "127.0.0.1", resolve));
  const { port } = hookServer.address() as AddressInfo;
  h = await createHarness({
    host: "127.0.0.1",
    port: 0,
    heartbeatIntervalMs: 1_000,
    webhooks: [
      { url: `http://127.0.0.1:${port}/hook`, secret: "a-webhook-secret-long-enough", events: [] },
    ],
  });
  url = await h.brain.listen();
  const template = await h.request("POST", "/api/v1/templates", {
    token: h.adminToken,
    body: { definition: helloTemplate },
  });
  expect(template.status).toBe(201);
});

afterAll(async () => {
  await h?.close();
  await new Promise((resolve) => hookServer.close(resolve));
});

describe("live stats: GET /instances/:id/stats", () => {
  let node: JoinResponse;
  let other: JoinResponse;
  let id: string;
  let report: Awaited<ReturnType<typeof runningInstance>>["report"];

  /** A sync of the stats node, with its inventory (a missing instance would be failed). */
  const nodeSync = (body: Partial<SyncRequest> = {}) =>
    h.sync(node.credential, {
      agentSessionId: SESSION_A,
      inventory: [{ instanceId: id, state: "RUNNING", seq: 4, epoch: 1 }],
      ...body,
    });

  beforeAll(async () => {
    node = await h.joinNode("stats-node");
    ({ id, report } = await runningInstance(node, "stats-1"));
    other = await h.joinNode("other-node");
  });

  it("tells the agent to sample a watched instance and streams the samples to a viewer", async () => {
    const viewer = await h.userToken("viewer");
    const before = await nodeSync();
    expect(before.body.watchStats).toEqual([]);

    const stream = await openStream(`/api/v1/instances/${id}/stats`, viewer);
    expect(stream.status).toBe(200);
    await waitUntil("the watch", async () => {
      const watched = await nodeSync();
      return watched.body.watchStats.includes(id);
    });
    // Another node never gets the instance to sample.
    expect((await h.sync(other.credential)).body.watchStats).toEqual([]);

    const pushed = await nodeSync({
      stats: [sample(id)],
    });
    expect(pushed.status).toBe(200);
    await stream.waitFor(1);
    expect(stream.messages[0]).toEqual({
      id: null,
      event: "stats",
      data: {
        ...sample(id),
        // Filled in from the instance's reservation (512 MB in the template).
        memoryLimitBytes: 512 * 1024 * 1024,
      },
    });

    // A later viewer gets the latest sample first.
    h.clock.advance(2_000);
    await nodeSync({
      stats: [sample(id, { cpu: 1.5, memoryLimitBytes: 1024 })],
    });
    await stream.waitFor(2);
    const second = await openStream(`/api/v1/instances/${id}/stats`, h.adminToken);
    await second.waitFor(1);
    expect(second.messages[0]).toMatchObject({
      event: "stats",
      data: { instanceId: id, cpu: 1.5, memoryLimitBytes: 1024 },
    });
    await second.close();
    await stream.close();
    await waitUntil("the watch to end", async () => {
      const watched = await nodeSync();
      return !watched.body.watchStats.includes(id);
    });
  });

  it("ignores samples from another node, for unknown instances, and older than the latest", async () => {
    const stats = h.brain.container.resolve<InstanceStats>(TOKENS.InstanceStats);
    const latest = stats.latestOf(id);
    expect(latest?.cpu).toBe(1.5);
    await h.sync(other.credential, { stats: [sample(id, { cpu: 3 })] });
    await nodeSync({
      stats: [
        sample("inst_unknown", { cpu: 3 }),
        sample(id, { cpu: 3, at: "2020-01-01T00:00:00Z" }),
      ],
    });
    expect(stats.latestOf(id)).toEqual(latest);
    expect(stats.latestOf("inst_unknown")).toBeNull();
  });

  it("refuses malformed samples (negative, wrong types, unknown fields)", async () => {
    for (const bad of [
      sample(id, { memoryBytes: -1 }),
      { ...sample(id), cpu: "lots" },
      { ...sample(id), extra: 1 },
    ]) {
      const response = await h.sync(node.credential, {
        agentSessionId: SESSION_A,
        stats: [bad as InstanceStatsSample],
      });
      expect(response.status).toBe(400);
    }
  });

  it("needs a user (401; a node credential 403) and a known instance (404)", async () => {
    expect((await h.request("GET", `/api/v1/instances/${id}/stats`)).status).toBe(401);
    expect(
      (await h.request("GET", `/api/v1/instances/${id}/stats`, { token: node.credential })).status,
    ).toBe(403);
    expect(
      (await h.request("GET", "/api/v1/instances/inst_nope/stats", { token: h.adminToken })).status,
    ).toBe(404);
  });

  it("sends one `unsupported` event for a runtime without stats", async () => {
    const stream = await openStream(`/api/v1/instances/${id}/stats`, h.adminToken);
    await nodeSync({ statsUnsupported: [id] });
    await stream.waitFor(2); // the latest sample, then the verdict
    expect(stream.messages.map((e) => e.event)).toEqual(["stats", "unsupported"]);
    expect(stream.messages[1]!.data).toMatchObject({ instanceId: id });
    await nodeSync({ statsUnsupported: [id] });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(stream.messages).toHaveLength(2); // said once
    expect(stream.ended).toBe(false); // and the stream stays open
    await stream.close();
  });

  it("closes the stream when the viewer's user is removed", async () => {
    const viewer = await h.userToken("viewer");
    const me = await h.request("GET", "/api/v1/auth/me", { token: viewer });
    const stream = await openStream(`/api/v1/instances/${id}/stats`, viewer);
    await stream.waitFor(1);
    const removed = await h.request("DELETE", `/api/v1/users/${me.body.user.id}`, {
      token: h.adminToken,
    });
    expect(removed.status).toBeLessThan(300);
    await Promise.race([stream.done, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    expect(stream.ended).toBe(true);
  });

  it("forgets the latest sample once the instance leaves RUNNING", async () => {
    const stats = h.brain.container.resolve<InstanceStats>(TOKENS.InstanceStats);
    expect(stats.latestOf(id)).not.toBeNull();
    const stopped = await h.request("POST", `/api/v1/instances/${id}/stop`, {
      token: h.adminToken,
    });
    expect(stopped.status).toBe(202);
    await nodeSync({
      reports: [report(5, 5, "stop")],
      inventory: [{ instanceId: id, state: "STOPPING", seq: 5, epoch: 1 }],
    });
    expect(stats.latestOf(id)).toBeNull();
    // Samples of an instance that is not RUNNING are not kept.
    await nodeSync({ stats: [sample(id)] });
    expect(stats.latestOf(id)).toBeNull();
  });
});

describe("one agent process per node credential", () => {
  let node: JoinResponse;

  beforeAll(async () => {
    node = await h.joinNode("identity-node");
  });

  it("refuses a second session while the first is alive: 409, audit entry, webhook, metric", async () => {
    expect((await h.sync(node.credential, { agentSessionId: SESSION_A })).status).toBe(200);
    const refused = await h.request("POST", "/api/v1/agent/sync", {
      token: node.credential,
      body: {
        agentSessionId: SESSION_B,
        inventory: [],
        reports: [],
        commandResults: [],
        logs: [],
        wait: false,
      },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("AGENT_IDENTITY_CONFLICT");
    expect(refused.body.error.details.retryAfterMs).toBeGreaterThan(0);
    expect(refused.headers["retry-after"]).toBeDefined();
    // The holder keeps working.
    expect((await h.sync(node.credential, { agentSessionId: SESSION_A })).status).toBe(200);

    const audit = await h.request(
      "GET",
      `/api/v1/audit?action=node.identity-conflict&target=node:${node.nodeId}`,
      { token: h.adminToken },
    );
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0]).toMatchObject({
      actor: { kind: "node", id: node.nodeId },
      details: { refusedSession: SESSION_B.slice(0, 8), nodeName: "identity-node" },
    });
    await waitUntil("the webhook", () =>
      hooks.some((hook) => hook.type === "node.identity_conflict"),
    );
    expect(hooks.find((hook) => hook.type === "node.identity_conflict")?.alert).toMatchObject({
      nodeId: node.nodeId,
    });

    // Refused again: counted, but not alerted again (the agent retries every window).
    expect((await h.sync(node.credential, { agentSessionId: SESSION_B })).status).toBe(409);
    const again = await h.request(
      "GET",
      `/api/v1/audit?action=node.identity-conflict&target=node:${node.nodeId}`,
      { token: h.adminToken },
    );
    expect(again.body.items).toHaveLength(1);
    const metrics = await h.request("GET", "/api/v1/metrics", { token: h.adminToken });
    expect(metrics.body).toContain(`orch_agent_identity_conflicts_total{node="${node.nodeId}"} 2`);
  });

  it("hands the node to a new session once the holder is silent for the window", async () => {
    h.clock.advance(agentSessionWindowMs(h.config));
    expect((await h.sync(node.credential, { agentSessionId: SESSION_B })).status).toBe(200);
    // Now the old one is the duplicate.
    expect((await h.sync(node.credential, { agentSessionId: SESSION_A })).status).toBe(409);
  });

  it("hands the node over at once when the holder releases it on shutdown", async () => {
    expect(
      (await h.sync(node.credential, { agentSessionId: SESSION_B, releaseSession: true })).status,
    ).toBe(200);
    expect((await h.sync(node.credential, { agentSessionId: SESSION_A })).status).toBe(200);
  });

  it("admits agents that send no session id (older agents), and refuses malformed ids", async () => {
    expect((await h.sync(node.credential)).status).toBe(200);
    expect((await h.sync(node.credential, { agentSessionId: "x" })).status).toBe(400);
    expect((await h.sync(node.credential, { agentSessionId: "a b c d e f g h" })).status).toBe(400);
  });

  it("counts a sync still in flight (a parked long-poll) as alive, however long it lasts", () => {
    const clock = new FakeClock("2026-03-01T10:00:00Z");
    const sessions = new AgentSessions(clock, 1_000);
    expect(sessions.begin("n1", SESSION_A)).toEqual({ accepted: true, takeover: null });
    clock.advance(60_000);
    expect(sessions.begin("n1", SESSION_B)).toMatchObject({ accepted: false, retryAfterMs: 1_000 });
    sessions.end("n1", SESSION_A);
    clock.advance(400);
    expect(sessions.begin("n1", SESSION_B)).toMatchObject({ accepted: false, retryAfterMs: 600 });
    clock.advance(600);
    expect(sessions.begin("n1", SESSION_B)).toMatchObject({
      accepted: true,
      takeover: { previous: SESSION_A, silentMs: 1_000 },
    });
    // The refused session's end() does not touch the new holder.
    sessions.end("n1", SESSION_A);
    expect(sessions.holderOf("n1")).toBe(SESSION_B);
  });
});

describe("runtime availability reported by agents", () => {
  it("shows an unavailable runtime on the node and places nothing that needs it there", async () => {
    // Drain every other node so the only candidate is the one under test.
    const listed = await h.request("GET", "/api/v1/nodes", { token: h.adminToken });
    for (const other of listed.body.items as { id: string }[])
      await h.request("POST", `/api/v1/nodes/${other.id}/drain`, { token: h.adminToken });
    const node = await h.joinNode("runtime-node");
    const down = {
      kind: "process",
      available: false,
      reason: "process runtime did not answer within 5000 ms",
      since: h.clock.now().toISOString(),
    };
    expect((await h.sync(node.credential, { runtimes: [down] })).status).toBe(200);
    const shown = await h.request("GET", `/api/v1/nodes/${node.nodeId}`, { token: h.adminToken });
    expect(shown.body.unavailableRuntimes).toEqual([down]);
    const inList = await h.request("GET", "/api/v1/nodes", { token: h.adminToken });
    expect(
      inList.body.items.find((n: { id: string }) => n.id === node.nodeId).unavailableRuntimes,
    ).toEqual([down]);
    const metrics = await h.request("GET", "/api/v1/metrics", { token: h.adminToken });
    expect(metrics.body).toContain("orch_nodes_runtime_unavailable 1");

    const created = await h.request("POST", "/api/v1/instances", {
      token: h.adminToken,
      body: { template: "hello", name: "waits-for-runtime", variables: { RCON_PASSWORD: "pw" } },
    });
    await h.brain.runLoopsOnce();
    const pending = await h.request("GET", `/api/v1/instances/${created.body.id}`, {
      token: h.adminToken,
    });
    expect(pending.body.state).toBe("REQUESTED");
    expect(pending.body.pendingPlacement.explanation.lines.join("\n")).toContain(
      "runtime process unavailable",
    );

    // The agent's next sync without a status: every runtime answers again.
    await h.sync(node.credential, {});
    const healthy = await h.request("GET", `/api/v1/nodes/${node.nodeId}`, {
      token: h.adminToken,
    });
    expect(healthy.body.unavailableRuntimes).toEqual([]);
    await h.brain.runLoopsOnce();
    const placed = await h.request("GET", `/api/v1/instances/${created.body.id}`, {
      token: h.adminToken,
    });
    expect(placed.body).toMatchObject({ state: "SCHEDULED", nodeId: node.nodeId });
  });

  it("hands a template with several runtimes the one that answers on the node", async () => {
    const listed = await h.request("GET", "/api/v1/nodes", { token: h.adminToken });
    for (const other of listed.body.items as { id: string }[])
      await h.request("POST", `/api/v1/nodes/${other.id}/drain`, { token: h.adminToken });
    const both = await h.request("POST", "/api/v1/templates", {
      token: h.adminToken,
      body: {
        definition: {
          ...helloTemplate,
          name: "hello-both",
          runtime: {
            docker: { image: "orchestrator/node-app:1", command: ["sh", "-c", "echo ready"] },
            process: { command: ["sh", "-c", "echo ready"] },
          },
        },
      },
    });
    expect(both.status).toBe(201);
    const node = await h.joinNode("two-runtimes", { runtimes: ["docker", "process"] });
    const dockerDown = {
      kind: "docker",
      available: false,
      reason: "the Docker engine is unreachable",
      since: h.clock.now().toISOString(),
    };
    await h.sync(node.credential, { runtimes: [dockerDown] });
    const created = await h.request("POST", "/api/v1/instances", {
      token: h.adminToken,
      body: { template: "hello-both", name: "either-runtime", variables: { RCON_PASSWORD: "pw" } },
    });
    await h.brain.runLoopsOnce();
    const delivered = await h.sync(node.credential, { runtimes: [dockerDown] });
    const prepare = delivered.body.commands.find(
      (command: AgentCommand) => command.instanceId === created.body.id,
    );
    expect(prepare?.payload).toMatchObject({ runtime: "process" });
  });
});
