import { describe, expect, it } from "vitest";
import { apportion, distributeEvenly, maxFor, normalize, rebalance, total, type WeightRow } from "./weights";

const rows = (ws: number[], locked: boolean[] = []): WeightRow[] =>
  ws.map((w, i) => ({ name: `w${i}`, weight: w, locked: !!locked[i] }));

describe("apportion", () => {
  it("splits proportionally with an exact integer total", () => {
    expect(apportion(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportion(20, [90, 10])).toEqual([18, 2]);
    expect(apportion(7, [0, 0])).toEqual([4, 3]);
    expect(apportion(0, [5, 5])).toEqual([0, 0]);
    expect(apportion(5, [])).toEqual([]);
    for (let t = 0; t <= 100; t++) expect(total(apportion(t, [13, 7, 29, 1]))).toBe(t);
  });
});

describe("rebalance", () => {
  it("keeps the total at 100 when a slider moves", () => {
    expect(rebalance(rows([90, 10]), 0, 80)).toEqual([80, 20]);
    expect(rebalance(rows([0, 90, 10]), 1, 80)).toEqual([0, 80, 20]);
  });
  it("rebalances the other unlocked sliders proportionally", () => {
    expect(rebalance(rows([50, 30, 20]), 0, 0)).toEqual([0, 60, 40]);
    expect(rebalance(rows([40, 40, 20]), 2, 50)).toEqual([25, 25, 50]);
    expect(rebalance(rows([34, 33, 33]), 0, 1)).toEqual([1, 50, 49]);
  });
  it("splits evenly among others that are all at 0", () => {
    expect(rebalance(rows([100, 0, 0]), 0, 40)).toEqual([40, 30, 30]);
    expect(rebalance(rows([100, 0, 0]), 0, 41)).toEqual([41, 30, 29]);
  });
  it("never moves locked sliders", () => {
    expect(rebalance(rows([30, 30, 40], [false, true, false]), 0, 50)).toEqual([50, 30, 20]);
    expect(rebalance(rows([30, 30, 40], [false, true, false]), 0, 90)).toEqual([70, 30, 0]);
  });
  it("clamps the moved slider when all others are locked", () => {
    expect(rebalance(rows([30, 30, 40], [false, true, true]), 0, 80)).toEqual([30, 30, 40]);
    expect(rebalance(rows([80, 20], [false, true]), 0, 10)).toEqual([80, 20]);
  });
  it("clamps to 0..100 and rounds", () => {
    expect(rebalance(rows([50, 50]), 0, 150)).toEqual([100, 0]);
    expect(rebalance(rows([50, 50]), 0, -5)).toEqual([0, 100]);
    expect(rebalance(rows([50, 50]), 0, 33.6)).toEqual([34, 66]);
    expect(rebalance(rows([50, 50]), 0, NaN)).toEqual([0, 100]);
  });
  it("always totals exactly 100", () => {
    let r = rows([20, 20, 20, 20, 20]);
    for (let step = 0; step < 200; step++) {
      const idx = (step * 7) % 5;
      const w = rebalance(r, idx, (step * 37) % 101);
      expect(total(w)).toBe(100);
      w.forEach((x) => { expect(Number.isInteger(x)).toBe(true); expect(x).toBeGreaterThanOrEqual(0); });
      r = r.map((row, i) => ({ ...row, weight: w[i], locked: i === step % 5 && step % 3 === 0 }));
    }
  });
  it("ignores a bad index", () => {
    expect(rebalance(rows([60, 40]), 5, 10)).toEqual([60, 40]);
  });
});

describe("maxFor / distributeEvenly / normalize", () => {
  it("max takes locks into account", () => {
    expect(maxFor(rows([30, 30, 40], [false, true, false]), 0)).toBe(70);
    expect(maxFor(rows([30, 30, 40], [false, true, true]), 0)).toBe(30);
    expect(maxFor(rows([30, 70]), 0)).toBe(100);
  });
  it("distributes evenly among unlocked rows", () => {
    expect(distributeEvenly(rows([90, 10]))).toEqual([50, 50]);
    expect(distributeEvenly(rows([0, 90, 10]))).toEqual([34, 33, 33]);
    expect(distributeEvenly(rows([10, 60, 30], [true, false, false]))).toEqual([10, 45, 45]);
    expect(distributeEvenly(rows([10, 90], [true, true]))).toEqual([10, 90]);
  });
  it("normalizes server weights to 100", () => {
    expect(normalize([90, 10])).toEqual([90, 10]);
    expect(normalize([0, 0, 0])).toEqual([34, 33, 33]);
    expect(normalize([80, 10])).toEqual([89, 11]);
    expect(normalize([])).toEqual([]);
  });
});
