import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signWebhook } from "../src/index.js";
import { createHarness, type Harness } from "./brain-harness.js";

const SECRET = "a-webhook-secret-of-some-length";
const received: { body: string; signature: string | undefined }[] = [];
let h: Harness;
let server: ReturnType<typeof createServer>;
let failuresLeft = 1;

function body(request: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    request.on("data", (chunk) => (text += chunk));
    request.on("end", () => resolve(text));
  });
}

beforeAll(async () => {
  server = createServer(async (request, response) => {
    const text = await body(request);
    if (failuresLeft > 0) {
      // The first delivery fails: the Brain retries.
      failuresLeft -= 1;
      response.writeHead(503).end();
      return;
    }
    received.push({
      body: text,
      signature: request.headers["x-orchestrator-signature"] as string | undefined,
    });
    response.writeHead(204).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  h = await createHarness({
    webhooks: [{ url: `http://127.0.0.1:${port}/hook`, secret: SECRET, events: ["node.offline"] }],
  });
});

afterAll(async () => {
  await h.close();
  await new Promise((resolve) => server.close(resolve));
});

describe("webhooks", () => {
  it("POSTs node.offline signed with HMAC-SHA256, retrying a failed delivery", async () => {
    const node = await h.joinNode("hooked");
    await h.advance(16_000);
    const deadline = Date.now() + 15_000;
    while (received.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    expect(received).toHaveLength(1);
    const delivery = received[0]!;
    expect(delivery.signature).toBe(signWebhook(SECRET, delivery.body));
    expect(JSON.parse(delivery.body)).toMatchObject({
      type: "node.offline",
      event: { kind: "node", nodeId: node.nodeId, to: "OFFLINE" },
    });
  });
});
