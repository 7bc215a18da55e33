/** A Server-Sent Events client over a real socket, for tests: collects `{ event, data, id }`. */
import { expect } from "vitest";

export interface SseMessage {
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: payloads are asserted field by field
  data: any;
  id: string | null;
}

export async function openSse(url: string, token: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, ...headers },
    signal: controller.signal,
  });
  const messages: SseMessage[] = [];
  let ended = false;
  const done = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          const id = /^id: (.*)$/m.exec(block)?.[1] ?? null;
          if (event && data) messages.push({ event, data: JSON.parse(data), id });
          cut = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  })();
  return {
    status: response.status,
    messages,
    get ended() {
      return ended;
    },
    /** Settles when the stream has ended (the server closed it, or `close`). */
    done,
    /** Waits until at least `count` messages arrived (fails after `timeoutMs`). */
    async waitFor(count: number, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(messages.length, `waited for ${count} messages`).toBeGreaterThanOrEqual(count);
    },
    /** Waits until `predicate` holds for the messages so far (fails after `timeoutMs`). */
    async until(predicate: (messages: SseMessage[]) => boolean, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(messages) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(predicate(messages), JSON.stringify(messages)).toBe(true);
    },
    /** Hangs up and waits until the reader has stopped. */
    async close() {
      controller.abort();
      await done;
    },
  };
}
