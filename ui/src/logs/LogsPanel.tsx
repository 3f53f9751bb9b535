// The Logs tab: app containers and istio-proxy in one time-ordered list (Kiali's "unified" view).
import { Fragment, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { api, enc } from "../api";
import { onLoggedIn } from "../auth";
import { appendLines, filterLines, lastTime, shortTime, sortLines, splitMatches, type LogLine, type LogsResponse } from "./logs";

const TAILS = [100, 500, 1000];
const FOLLOW_MS = 2000;
const PROXY = "istio-proxy";

export default function LogsPanel({ namespace, workload, containers }: { namespace: string; workload: string; containers: string[] }) {
  const [tail, setTail] = useState(500);
  const [lines, setLines] = useState<LogLine[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [hidden, setHidden] = useState<Set<string>>(new Set());
  const [filter, setFilter] = useState("");
  const [mode, setMode] = useState<"show" | "hide">("show");
  const [follow, setFollow] = useState(false);
  const [loading, setLoading] = useState(false);
  const pane = useRef<HTMLDivElement>(null);
  const linesRef = useRef<LogLine[]>([]);
  const scrollToEnd = useRef(true);
  const base = `/api/namespaces/${enc(namespace)}/workloads/${enc(workload)}/logs`;

  const load = useCallback(() => {
    setLoading(true);
    api.get<LogsResponse>(`${base}?tailLines=${tail}`)
      .then((d) => { const ls = sortLines(d.lines ?? []); linesRef.current = ls; setLines(ls); setError(null); scrollToEnd.current = true; })
      .catch((e: Error) => { setError(e.message); setLines((l) => l ?? []); })
      .finally(() => setLoading(false));
  }, [base, tail]);
  useEffect(load, [load]);
  useEffect(() => onLoggedIn(load), [load]); // reload what a 401 left empty

  // Follow: every 2 s ask for the lines after the newest one and append them.
  useEffect(() => {
    if (!follow) return;
    let busy = false;
    const tick = () => {
      if (busy) return;
      busy = true;
      const since = lastTime(linesRef.current);
      api.get<LogsResponse>(`${base}?tailLines=${tail}${since ? `&sinceTime=${enc(since)}` : ""}`)
        .then((d) => {
          const next = appendLines(linesRef.current, d.lines ?? [], Math.max(5000, tail * 4));
          if (next !== linesRef.current) { linesRef.current = next; setLines(next); scrollToEnd.current = true; }
          setError(null);
        })
        .catch((e: Error) => setError(e.message))
        .finally(() => { busy = false; });
    };
    scrollToEnd.current = true;
    tick();
    const t = setInterval(tick, FOLLOW_MS);
    return () => clearInterval(t);
  }, [follow, base, tail]);

  const allContainers = useMemo(() => {
    const s = new Set(containers);
    (lines ?? []).forEach((l) => s.add(l.container));
    const list = [...s];
    return [...list.filter((c) => c !== PROXY).sort(), ...list.filter((c) => c === PROXY)];
  }, [containers, lines]);
  const pods = useMemo(() => new Set((lines ?? []).map((l) => l.pod)), [lines]);
  const shown = useMemo(() => filterLines(lines ?? [], { hidden, text: filter, mode }), [lines, hidden, filter, mode]);

  useLayoutEffect(() => {
    const el = pane.current;
    if (el && scrollToEnd.current) { el.scrollTop = el.scrollHeight; if (!follow) scrollToEnd.current = false; }
  }, [shown, follow]);

  const toggle = (c: string) => setHidden((h) => { const n = new Set(h); if (n.has(c)) n.delete(c); else n.add(c); return n; });
  const highlight = mode === "show" ? filter : "";

  return (
    <div>
      <div className="logs-toolbar">
        <span className="group">
          {allContainers.map((c) => (
            <label key={c} title={c === PROXY ? "Sidecar proxy (Envoy) lines" : "Application container lines"}>
              <input type="checkbox" data-testid={`logs-container-${c}`} checked={!hidden.has(c)} onChange={() => toggle(c)} />
              {c}{c === PROXY ? "" : " (app)"}
            </label>
          ))}
        </span>
        <span className="group">
          <select data-testid="logs-filter-mode" aria-label="Filter mode" value={mode} onChange={(e) => setMode(e.target.value as "show" | "hide")}>
            <option value="show">Show lines with</option>
            <option value="hide">Hide lines with</option>
          </select>
          <input type="search" data-testid="logs-filter" placeholder="Substring" value={filter} onChange={(e) => setFilter(e.target.value)}
            style={{ border: "1px solid var(--border)", borderRadius: 3, padding: "4px 8px", width: 220 }} />
        </span>
        <label>
          Tail
          <select data-testid="logs-tail" value={tail} onChange={(e) => setTail(Number(e.target.value))}>
            {TAILS.map((t) => <option key={t} value={t}>{t} lines</option>)}
          </select>
        </label>
        <label title="Poll for new lines every 2 seconds">
          <input type="checkbox" data-testid="logs-follow" checked={follow} onChange={(e) => setFollow(e.target.checked)} />
          Follow
        </label>
        <span className="toolbar-spacer" />
        <button onClick={load} disabled={loading}>{loading ? "Loading…" : "Refresh"}</button>
      </div>
      <div className="logs-pane" data-testid="logs" data-following={follow ? "true" : "false"} ref={pane}>
        {error && <div className="logs-empty" data-testid="logs-error" style={{ color: "#f5a9a0" }}>Could not load the logs: {error}</div>}
        {lines === null && !error && <div className="logs-empty">Loading…</div>}
        {lines !== null && shown.length === 0 && !error && (
          <div className="logs-empty">{lines.length === 0 ? "No log lines." : "No lines match the filters."}</div>
        )}
        {shown.map((l, i) => (
          <div key={i} className={`log-line${l.proxy ? " proxy" : ""}`} data-testid="log-line" data-proxy={l.proxy ? "true" : "false"}
            data-container={l.container} data-time={l.time}>
            <span className="log-time" title={l.time}>{shortTime(l.time)}</span>
            {pods.size > 1 && <span className="log-pod">{l.pod}</span>}
            <span className="log-tag">{l.proxy ? "proxy" : l.container}</span>
            <span className="log-text">
              {splitMatches(l.line, highlight).map((p, j) => p.match ? <mark key={j}>{p.text}</mark> : <Fragment key={j}>{p.text}</Fragment>)}
            </span>
          </div>
        ))}
      </div>
      <div className="logs-status">
        <span>{shown.length} of {lines?.length ?? 0} lines</span>
        {follow && <span><span className="follow-dot" />Following (every 2 s)</span>}
      </div>
    </div>
  );
}
