/** Small formatting helpers shared by the pages (pure, unit-tested). */

/** "just now", "5 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function ago(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "never";
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 1) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Used/total as a 0..100 percentage (0 when there is no capacity). */
export function percent(used: number, total: number): number {
  if (!(total > 0)) return 0;
  return Math.min(100, Math.max(0, Math.round((used / total) * 100)));
}

/** Megabytes for people: "512 MB", "1.5 GB". */
export function megabytes(mb: number): string {
  if (mb >= 1024) return `${Math.round((mb / 1024) * 10) / 10} GB`;
  return `${Math.round(mb)} MB`;
}

/** An http(s) URL, or null: the only links the panel renders. */
export function safeHttpUrl(candidate: string): string | null {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Where a named port of an instance answers HTTP, when the port looks like one. */
export function portUrl(host: string, name: string, port: number): string | null {
  if (!/http|web/i.test(name)) return null;
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return safeHttpUrl(`http://${bracketed}:${port}/`);
}
