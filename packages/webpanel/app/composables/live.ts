import {
  type ApiEvent,
  type ApiLogLine,
  type ApiStatsSample,
  parseStatsSample,
  parseStatsUnsupported,
} from "../utils/ui";

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

/** How a stats stream ends up, for the page to say. */
export interface StatsStreamHandlers {
  onSample: (sample: ApiStatsSample) => void;
  /** The instance's runtime gives no stats (the stream stays open). */
  onUnsupported: (reason: string) => void;
  /** The Brain refused or dropped the stream for good (no automatic retry). */
  onClosed: () => void;
}

/**
 * One instance's live resource usage (`/instances/:id/stats`, SSE): the latest
 * sample, then one every few seconds while the stream is open. The Brain asks
 * the node to sample only while someone watches, so the caller must close it.
 */
export function openStatsStream(id: string, handlers: StatsStreamHandlers): () => void {
  const stats = new EventSource(`/api/v1/instances/${encodeURIComponent(id)}/stats`);
  stats.addEventListener("stats", (message) => {
    const sample = parseStatsSample((message as MessageEvent<string>).data, id);
    if (sample) handlers.onSample(sample);
  });
  stats.addEventListener("unsupported", (message) => {
    handlers.onUnsupported(parseStatsUnsupported((message as MessageEvent<string>).data));
  });
  // A dropped connection is retried by the browser (readyState CONNECTING); an
  // answer that is not an event stream (401, 404) closes it for good.
  stats.onerror = () => {
    if (stats.readyState === EventSource.CLOSED) handlers.onClosed();
  };
  return () => stats.close();
}
