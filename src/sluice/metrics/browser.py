"""The expression browser served at `/` on the metrics port: one self-contained page (no external assets)
with a query box, a table of the instant result and an SVG graph of a range query, both through /api/v1."""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice · PromQL</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
textarea{width:100%;font:13px monospace;box-sizing:border-box}
table{border-collapse:collapse;margin-top:.8em;width:100%}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;font:12px monospace}
td.v{text-align:right}
.err{color:#b00;white-space:pre-wrap}.warn{color:#a60}
svg{border:1px solid #ccc;margin-top:.8em;background:#fff}
#legend span{display:inline-block;margin-right:1em;font:11px monospace}
</style></head><body>
<h2>Sluice expression browser</h2>
<textarea id="q" rows="3" placeholder="PromQL, e.g. sum(rate(istio_requests_total[1m])) by (destination_workload)"></textarea>
<p><button id="run">Execute</button>
<label>range <select id="range"><option>5m</option><option selected>15m</option><option>1h</option>
<option>6h</option><option>24h</option></select></label>
<label><input type="radio" name="view" value="table" checked> table</label>
<label><input type="radio" name="view" value="graph"> graph</label></p>
<div id="msg"></div><div id="out"></div>
<script>
const $ = id => document.getElementById(id);
const SEC = {m: 60, h: 3600};
const COLORS = ["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf"];
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function fmtMetric(m) {
  const name = m.__name__ || "";
  const rest = Object.entries(m).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}="${v}"`);
  return name + "{" + rest.join(", ") + "}";
}
async function api(path, params) {
  const r = await fetch(path, {method: "POST", body: new URLSearchParams(params)});
  return r.json();
}
function show(res) {
  $("msg").innerHTML = "";
  if (res.status !== "success") {
    $("msg").innerHTML = `<div class="err">${esc(res.errorType)}: ${esc(res.error)}</div>`;
    $("out").innerHTML = ""; return false;
  }
  for (const w of res.warnings || []) $("msg").innerHTML += `<div class="warn">warning: ${esc(w)}</div>`;
  return true;
}
function table(data) {
  const rows = [];
  const r = data.result;
  if (data.resultType === "scalar" || data.resultType === "string") rows.push(["scalar", r[1]]);
  else if (data.resultType === "vector") for (const s of r) rows.push([fmtMetric(s.metric), s.value[1]]);
  else for (const s of r) rows.push([fmtMetric(s.metric), s.values.map(p => `${p[1]} @${p[0]}`).join("<br>")]);
  $("out").innerHTML = rows.length ? "<table><tr><th>series</th><th>value</th></tr>" +
    rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="v">${v}</td></tr>`).join("") + "</table>"
    : "<p>Empty query result</p>";
}
function graph(data, start, end) {
  const W = 900, H = 320, P = 45;
  const series = data.result.map(s => ({name: fmtMetric(s.metric),
    pts: s.values.map(p => [p[0], parseFloat(p[1])]).filter(p => isFinite(p[1]))}));
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const p of s.pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
  if (!isFinite(lo)) { $("out").innerHTML = "<p>No data points</p>"; return; }
  if (hi === lo) { hi += 1; lo -= lo === 0 ? 0 : 1; }
  const x = t => P + (t - start) / (end - start) * (W - 2 * P);
  const y = v => H - P + (P * 2 - H) * (v - lo) / (hi - lo);
  let svg = `<svg width="${W}" height="${H}">`;
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    svg += `<line x1="${P}" x2="${W - P}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>` +
      `<text x="2" y="${y(v) + 4}" font-size="10">${+v.toPrecision(4)}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = start + (end - start) * i / 4;
    svg += `<text x="${x(t) - 20}" y="${H - P + 15}" font-size="10">${new Date(t * 1000).toLocaleTimeString()}</text>`;
  }
  series.forEach((s, i) => {
    const d = s.pts.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join("");
    svg += `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5"/>`;
  });
  $("out").innerHTML = svg + "</svg><div id='legend'>" + series.map((s, i) =>
    `<span style="color:${COLORS[i % COLORS.length]}">■ ${esc(s.name)}</span>`).join("") + "</div>";
}
async function run() {
  const query = $("q").value.trim();
  if (!query) return;
  history.replaceState(null, "", "?q=" + encodeURIComponent(query));
  if (document.querySelector("input[name=view]:checked").value === "table") {
    const res = await api("api/v1/query", {query});
    if (show(res)) table(res.data);
  } else {
    const r = $("range").value, end = Date.now() / 1000, start = end - parseInt(r) * SEC[r.slice(-1)];
    const step = Math.max(1, Math.round((end - start) / 250));
    const res = await api("api/v1/query_range", {query, start, end, step});
    if (show(res)) graph(res.data, start, end);
  }
}
$("run").onclick = run;
$("q").onkeydown = e => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); run(); } };
const initial = new URLSearchParams(location.search).get("q");
if (initial) { $("q").value = initial; run(); }
</script></body></html>
"""
