// Formatting of metric values and the shaping of the metrics API's series for uPlot. Pure, tested.

export interface Series { label: string; values: [number, number][] }
export interface Chart { name: string; title: string; unit: string; series: Series[] }
export interface MetricsResponse { start: number; end: number; step: number; direction: string; reporter?: string; charts: Chart[] }

/** A number with ~3 significant digits, without trailing zeros. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0";
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 4;
  return String(Number(v.toFixed(digits)));
}

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** A value with its unit, scaled the way people read it: `12 ms`, `1.5 s`, `2.4 KiB`, `0.52 ops`. */
export function formatValue(v: number | null | undefined, unit: string): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  switch (unit) {
    case "ms":
      if (Math.abs(v) >= 1000) return `${formatNumber(v / 1000)} s`;
      return `${formatNumber(v)} ms`;
    case "s":
      if (Math.abs(v) < 1 && v !== 0) return `${formatNumber(v * 1000)} ms`;
      return `${formatNumber(v)} s`;
    case "B":
    case "bytes": {
      let i = 0;
      let x = v;
      while (Math.abs(x) >= 1024 && i < BYTE_UNITS.length - 1) { x /= 1024; i++; }
      return `${formatNumber(x)} ${BYTE_UNITS[i]}`;
    }
    case "ops":
      return `${formatNumber(v)} ops`;
    case "":
      return formatNumber(v);
    default:
      return `${formatNumber(v)} ${unit}`;
  }
}

/** Lines up every series on one time axis (uPlot's data layout): missing points are null. */
export function alignSeries(series: Series[]): { xs: number[]; ys: (number | null)[][] } {
  const times = new Set<number>();
  for (const s of series) for (const [t] of s.values) times.add(t);
  const xs = [...times].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const ys = series.map((s) => {
    const col: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.values) {
      const n = typeof v === "number" ? v : Number(v);
      col[index.get(t)!] = Number.isFinite(n) ? n : null;
    }
    return col;
  });
  return { xs, ys };
}

export const hasData = (c: Chart) => c.series.some((s) => s.values.length > 0);

export const DURATIONS: { value: string; label: string; seconds: number }[] = [
  { value: "5m", label: "Last 5m", seconds: 300 },
  { value: "10m", label: "Last 10m", seconds: 600 },
  { value: "30m", label: "Last 30m", seconds: 1800 },
  { value: "1h", label: "Last 1h", seconds: 3600 },
];

/** The query step for a duration: about 40-60 points per chart, never under 15 s. */
export function stepFor(duration: string): string {
  const d = DURATIONS.find((x) => x.value === duration);
  const seconds = d ? d.seconds : 600;
  const step = Math.max(15, Math.round(seconds / 60 / 15) * 15);
  return `${step}s`;
}
