import type { ApiEvent, ApiLogLine } from "../utils/ui";

type Listener = (event: ApiEvent) => void;

const listeners = new Set<Listener>();
let source: EventSource | null = null;

/**
 * The Brain's event stream (`/api/v1/events`, SSE), opened once per session:
 * instance states change live without polling. The browser resumes after a
 * drop with `Last-Event-ID`, so no transition is missed.
 */
export function useLiveEvents() {
  const recent = useState<ApiEvent[]>("recent-events", () => []);
  const states = useState<Record<string, string>>("live-states", () => ({}));
  const connected = useState<boolean>("live-connected", () => false);

  function open(): void {
    if (source) return;
    source = new EventSource("/api/v1/events");
    source.onopen = () => {
      connected.value = true;
    };
    source.onerror = () => {
      connected.value = false;
    };
    source.addEventListener("event", (message) => {
      let event: ApiEvent;
      try {
        event = JSON.parse((message as MessageEvent<string>).data) as ApiEvent;
      } catch {
        return;
      }
      if (event.kind === "instance") states.value[event.instanceId] = event.to;
      recent.value = [event, ...recent.value].slice(0, 50);
      for (const listener of listeners) listener(event);
    });
  }

  function close(): void {
    source?.close();
    source = null;
    connected.value = false;
    recent.value = [];
    states.value = {};
  }

  /** Calls `listener` for every event until the calling component unmounts. */
  function subscribe(listener: Listener): void {
    listeners.add(listener);
    if (getCurrentInstance()) onBeforeUnmount(() => listeners.delete(listener));
  }

  return { recent, states, connected, open, close, subscribe };
}

/** One instance's console: backlog then live lines (SSE `log` events). */
export function openLogStream(id: string, onLine: (line: ApiLogLine) => void): () => void {
  const logs = new EventSource(`/api/v1/instances/${encodeURIComponent(id)}/logs`);
  logs.addEventListener("log", (message) => {
    try {
      onLine(JSON.parse((message as MessageEvent<string>).data) as ApiLogLine);
    } catch {
      // A malformed frame is skipped; the stream goes on.
    }
  });
  return () => logs.close();
}
