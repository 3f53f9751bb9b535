// Traffic Shifting weights: integers 0..100 that always total 100. Moving one slider rebalances the other
// unlocked sliders proportionally; locked sliders never move. Pure functions, tested with vitest.

export interface WeightRow { name: string; weight: number; locked: boolean }

export const TOTAL = 100;

const clampInt = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(Number.isFinite(v) ? v : 0)));

/**
 * Splits `total` into integers proportional to `shares` (largest remainder method; ties go to the larger
 * share, then to the earlier position). All-zero shares split evenly.
 */
export function apportion(total: number, shares: number[]): number[] {
  const n = shares.length;
  if (n === 0) return [];
  total = Math.max(0, Math.round(total));
  const clean = shares.map((s) => (Number.isFinite(s) && s > 0 ? s : 0));
  const sum = clean.reduce((a, b) => a + b, 0);
  const basis = sum > 0 ? clean : clean.map(() => 1);
  const bsum = sum > 0 ? sum : n;
  const exact = basis.map((s) => (s * total) / bsum);
  const out = exact.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => ({ i, frac: x - Math.floor(x), share: basis[i] }))
    .sort((a, b) => b.frac - a.frac || b.share - a.share || a.i - b.i);
  for (let k = 0; left > 0; k = (k + 1) % n, left--) out[order[k].i]++;
  return out;
}

/** Weights read from the server made to total exactly 100 (proportionally; evenly when all are 0). */
export function normalize(weights: number[]): number[] {
  if (weights.length === 0) return [];
  const w = weights.map((x) => clampInt(x, 0, TOTAL));
  if (w.reduce((a, b) => a + b, 0) === TOTAL) return w;
  return apportion(TOTAL, w);
}

/**
 * Sets row `index` to `value` and rebalances the other unlocked rows so the total stays 100: the rest
 * (100 - value - locked weights) is shared among them proportionally to their current weights (evenly if
 * they are all 0). When every other row is locked, the moved row is clamped to what the locked ones leave.
 * Returns the new weights (same order as `rows`).
 */
export function rebalance(rows: WeightRow[], index: number, value: number): number[] {
  const weights = rows.map((r) => r.weight);
  if (index < 0 || index >= rows.length) return weights;
  const others = rows.map((_, i) => i).filter((i) => i !== index);
  const lockedSum = others.filter((i) => rows[i].locked).reduce((a, i) => a + rows[i].weight, 0);
  const free = others.filter((i) => !rows[i].locked);
  const max = Math.max(0, TOTAL - lockedSum);
  if (free.length === 0) {
    weights[index] = max;
    return weights;
  }
  const v = clampInt(value, 0, max);
  weights[index] = v;
  const shares = apportion(max - v, free.map((i) => rows[i].weight));
  free.forEach((i, k) => { weights[i] = shares[k]; });
  return weights;
}

/** The largest value row `index` can take given the locked rows. */
export function maxFor(rows: WeightRow[], index: number): number {
  const lockedSum = rows.reduce((a, r, i) => (i !== index && r.locked ? a + r.weight : a), 0);
  const hasFree = rows.some((r, i) => i !== index && !r.locked);
  return hasFree ? Math.max(0, TOTAL - lockedSum) : rows[index]?.weight ?? 0;
}

/** "Evenly distribute": the unlocked rows share what the locked rows leave (earlier rows get the remainder). */
export function distributeEvenly(rows: WeightRow[]): number[] {
  const weights = rows.map((r) => r.weight);
  const free = rows.map((_, i) => i).filter((i) => !rows[i].locked);
  if (free.length === 0) return weights;
  const lockedSum = rows.reduce((a, r) => (r.locked ? a + r.weight : a), 0);
  const rest = Math.max(0, TOTAL - lockedSum);
  const base = Math.floor(rest / free.length);
  let extra = rest - base * free.length;
  free.forEach((i) => { weights[i] = base + (extra-- > 0 ? 1 : 0); });
  return weights;
}

export const total = (weights: number[]) => weights.reduce((a, b) => a + b, 0);
