// Workload logs: the app containers' and istio-proxy's lines in one time-ordered list. Pure, tested.

export interface LogLine { pod: string; container: string; time: string; line: string; proxy: boolean }
export interface LogsResponse { namespace?: string; workload?: string; lines: LogLine[] }

/**
 * A key that sorts RFC 3339 timestamps chronologically, whatever the number of fraction digits
 * (`...:00.1Z` < `...:00.123456789Z`). Offsets other than Z are converted through Date.
 */
export function timeKey(t: string): string {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/.exec(t ?? "");
  if (!m) {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? new Date(ms).toISOString().slice(0, 19) + "." + String(ms % 1000).padStart(3, "0").padEnd(9, "0") : "";
  }
  const frac = (m[2] ?? "").slice(0, 9).padEnd(9, "0");
  if (!m[3] || m[3] === "Z") return `${m[1]}.${frac}`;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}`;
}

const identity = (l: LogLine) => `${l.time}\u0000${l.pod}\u0000${l.container}\u0000${l.line}`;

/** Sorted by time (stable: lines with the same time keep their order). */
export function sortLines(lines: LogLine[]): LogLine[] {
  return lines
    .map((l, i) => ({ l, i, k: timeKey(l.time) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i))
    .map((x) => x.l);
}

/**
 * Appends `incoming` (a follow poll's answer) to `existing`: duplicates are dropped, the result is in time
 * order and keeps at most `max` lines (the newest).
 */
export function appendLines(existing: LogLine[], incoming: LogLine[], max = 5000): LogLine[] {
  if (incoming.length === 0) return existing.length > max ? existing.slice(existing.length - max) : existing;
  const seen = new Set(existing.map(identity));
  const fresh = incoming.filter((l) => { const id = identity(l); if (seen.has(id)) return false; seen.add(id); return true; });
  if (fresh.length === 0) return existing;
  const lastKey = existing.length ? timeKey(existing[existing.length - 1].time) : "";
  const sortedFresh = sortLines(fresh);
  const merged = timeKey(sortedFresh[0].time) >= lastKey ? existing.concat(sortedFresh) : sortLines(existing.concat(fresh));
  return merged.length > max ? merged.slice(merged.length - max) : merged;
}

/** The time to ask `sinceTime=` with: the newest line's (the server answers strictly later lines). */
export function lastTime(lines: LogLine[]): string | null {
  let best: string | null = null;
  let bestKey = "";
  for (const l of lines) {
    const k = timeKey(l.time);
    if (k > bestKey) { bestKey = k; best = l.time; }
  }
  return best;
}

export interface LogFilter {
  /** Containers whose lines are hidden (e.g. `istio-proxy`). */
  hidden: Set<string> | string[];
  /** Substring to look for (case-insensitive). */
  text: string;
  /** `show`: only lines containing the text; `hide`: all lines but those. */
  mode: "show" | "hide";
}

export function filterLines(lines: LogLine[], f: LogFilter): LogLine[] {
  const hidden = f.hidden instanceof Set ? f.hidden : new Set(f.hidden);
  const needle = f.text.trim().toLowerCase();
  return lines.filter((l) => {
    if (hidden.has(l.container)) return false;
    if (!needle) return true;
    const hit = l.line.toLowerCase().includes(needle);
    return f.mode === "hide" ? !hit : hit;
  });
}

/** `03:40:00.123` from an RFC 3339 time (UTC, as the logs are). */
export function shortTime(t: string): string {
  const m = /T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,3}))?/.exec(t ?? "");
  if (!m) return t ?? "";
  return m[2] ? `${m[1]}.${m[2].padEnd(3, "0")}` : m[1];
}

/** Splits a line around case-insensitive matches of `needle` (for highlighting). */
export function splitMatches(line: string, needle: string): { text: string; match: boolean }[] {
  const n = needle.trim().toLowerCase();
  if (!n) return [{ text: line, match: false }];
  const out: { text: string; match: boolean }[] = [];
  const low = line.toLowerCase();
  let i = 0;
  for (;;) {
    const j = low.indexOf(n, i);
    if (j < 0) break;
    if (j > i) out.push({ text: line.slice(i, j), match: false });
    out.push({ text: line.slice(j, j + n.length), match: true });
    i = j + n.length;
  }
  if (i < line.length) out.push({ text: line.slice(i), match: false });
  return out;
}
