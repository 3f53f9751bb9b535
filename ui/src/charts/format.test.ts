import { describe, expect, it } from "vitest";
import { alignSeries, formatNumber, formatValue, hasData, stepFor } from "./format";

describe("formatValue", () => {
  it("formats numbers with about 3 significant digits", () => {
    expect(formatNumber(0)).toBe("0");
    expect(formatNumber(1.5)).toBe("1.5");
    expect(formatNumber(12.345)).toBe("12.3");
    expect(formatNumber(123.4)).toBe("123");
    expect(formatNumber(0.01234)).toBe("0.012");
    expect(formatNumber(NaN)).toBe("–");
  });
  it("scales durations", () => {
    expect(formatValue(12.5, "ms")).toBe("12.5 ms");
    expect(formatValue(1500, "ms")).toBe("1.5 s");
    expect(formatValue(0.25, "s")).toBe("250 ms");
  });
  it("scales sizes in binary units", () => {
    expect(formatValue(512, "B")).toBe("512 B");
    expect(formatValue(1536, "B")).toBe("1.5 KiB");
    expect(formatValue(3 * 1024 * 1024, "B")).toBe("3 MiB");
  });
  it("formats rates and missing values", () => {
    expect(formatValue(0.52, "ops")).toBe("0.52 ops");
    expect(formatValue(null, "ops")).toBe("–");
    expect(formatValue(2, "")).toBe("2");
    expect(formatValue(2, "req")).toBe("2 req");
  });
});

describe("alignSeries", () => {
  it("puts every series on one time axis", () => {
    const { xs, ys } = alignSeries([
      { label: "total", values: [[10, 1], [20, 2], [30, 3]] },
      { label: "errors", values: [[20, 0.5]] },
      { label: "empty", values: [] },
    ]);
    expect(xs).toEqual([10, 20, 30]);
    expect(ys).toEqual([[1, 2, 3], [null, 0.5, null], [null, null, null]]);
  });
  it("accepts string values (Prometheus style) and drops NaN", () => {
    const { ys } = alignSeries([{ label: "a", values: [[1, "2.5" as unknown as number], [2, "NaN" as unknown as number]] }]);
    expect(ys).toEqual([[2.5, null]]);
  });
  it("knows whether a chart has data", () => {
    expect(hasData({ name: "x", title: "X", unit: "ms", series: [{ label: "p50", values: [] }] })).toBe(false);
  });
});

describe("stepFor", () => {
  it("keeps charts readable", () => {
    expect(stepFor("5m")).toBe("15s");
    expect(stepFor("10m")).toBe("15s");
    expect(stepFor("30m")).toBe("30s");
    expect(stepFor("1h")).toBe("60s");
  });
});
