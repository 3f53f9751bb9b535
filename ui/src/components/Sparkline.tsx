// A traffic sparkline as inline SVG: a polyline with a light area under it, the last value beside it.
import "./lists.css";
export default function Sparkline({ points, width = 220, height = 44, unit = "rps" }: {
  points?: [number, number][] | null; width?: number; height?: number; unit?: string;
}) {
  const data = (points ?? []).filter((p) => Number.isFinite(p[1]));
  if (data.length < 2) return <div className="sparkline-empty muted" style={{ height }}>No traffic data</div>;
  const t0 = data[0][0];
  const t1 = data[data.length - 1][0];
  const max = Math.max(...data.map((p) => p[1]));
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t: number) => (t1 === t0 ? 0 : ((t - t0) / (t1 - t0)) * (width - 2) + 1);
  const y = (v: number) => height - 2 - (v / top) * (height - 4);
  const line = data.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
  const area = `1,${height - 1} ${line} ${width - 1},${height - 1}`;
  const last = data[data.length - 1][1];
  const fmt = (v: number) => (v === 0 ? "0" : String(Number(v.toPrecision(2))));
  return (
    <div className="sparkline">
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img"
           aria-label={`traffic, last ${fmt(last)} ${unit}, max ${fmt(max)} ${unit}`}>
        <polygon points={area} fill="rgba(0,102,204,.12)" />
        <polyline points={line} fill="none" stroke="#0066cc" strokeWidth={1.5} strokeLinejoin="round" />
      </svg>
      <span className="sparkline-value">{fmt(last)} {unit}</span>
    </div>
  );
}
