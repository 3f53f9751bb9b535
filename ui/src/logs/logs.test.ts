import { describe, expect, it } from "vitest";
import { appendLines, filterLines, lastTime, shortTime, sortLines, splitMatches, timeKey, type LogLine } from "./logs";

const L = (time: string, line: string, proxy = false, container = proxy ? "istio-proxy" : "reviews", pod = "p1"): LogLine =>
  ({ time, line, proxy, container, pod });

describe("timeKey / sortLines", () => {
  it("orders timestamps with different fraction lengths", () => {
    expect(timeKey("2026-11-28T03:40:00.1Z") < timeKey("2026-11-28T03:40:00.123456789Z")).toBe(true);
    expect(timeKey("2026-11-28T03:40:00Z") < timeKey("2026-11-28T03:40:00.000000001Z")).toBe(true);
    expect(timeKey("2026-11-28T04:40:00+01:00")).toBe(timeKey("2026-11-28T03:40:00Z"));
  });
  it("merges app and proxy lines in time order, stable for equal times", () => {
    const s = sortLines([
      L("2026-11-28T03:40:02Z", "app 2"),
      L("2026-11-28T03:40:01.5Z", "proxy 1", true),
      L("2026-11-28T03:40:02Z", "proxy 2", true),
      L("2026-11-28T03:40:01Z", "app 1"),
    ]);
    expect(s.map((l) => l.line)).toEqual(["app 1", "proxy 1", "app 2", "proxy 2"]);
  });
});

describe("appendLines (follow mode)", () => {
  const base = [L("2026-11-28T03:40:01Z", "a"), L("2026-11-28T03:40:02Z", "b", true)];
  it("appends newer lines and drops duplicates", () => {
    const next = appendLines(base, [L("2026-11-28T03:40:02Z", "b", true), L("2026-11-28T03:40:03Z", "c")]);
    expect(next.map((l) => l.line)).toEqual(["a", "b", "c"]);
    expect(appendLines(base, [])).toBe(base);
    expect(appendLines(base, [base[0]])).toBe(base);
  });
  it("re-sorts lines that arrive late", () => {
    const next = appendLines(base, [L("2026-11-28T03:40:01.5Z", "late")]);
    expect(next.map((l) => l.line)).toEqual(["a", "late", "b"]);
  });
  it("keeps the newest lines under the cap", () => {
    const next = appendLines(base, [L("2026-11-28T03:40:03Z", "c"), L("2026-11-28T03:40:04Z", "d")], 3);
    expect(next.map((l) => l.line)).toEqual(["b", "c", "d"]);
  });
  it("knows the newest time", () => {
    expect(lastTime(base)).toBe("2026-11-28T03:40:02Z");
    expect(lastTime([])).toBeNull();
  });
});

describe("filterLines", () => {
  const lines = [L("t1", "GET /reviews 200"), L("t2", "[2026] \"GET /reviews/0 HTTP/1.1\" 200", true), L("t3", "error: boom")];
  it("filters by container", () => {
    expect(filterLines(lines, { hidden: new Set(["istio-proxy"]), text: "", mode: "show" })).toHaveLength(2);
    expect(filterLines(lines, { hidden: ["reviews"], text: "", mode: "show" })).toHaveLength(1);
  });
  it("shows or hides lines containing a substring (case-insensitive)", () => {
    expect(filterLines(lines, { hidden: [], text: "get /REVIEWS", mode: "show" }).map((l) => l.time)).toEqual(["t1", "t2"]);
    expect(filterLines(lines, { hidden: [], text: "reviews", mode: "hide" }).map((l) => l.time)).toEqual(["t3"]);
    expect(filterLines(lines, { hidden: [], text: "  ", mode: "hide" })).toHaveLength(3);
  });
});

describe("display helpers", () => {
  it("shortens times", () => {
    expect(shortTime("2026-11-28T03:40:00.123456789Z")).toBe("03:40:00.123");
    expect(shortTime("2026-11-28T03:40:00.1Z")).toBe("03:40:00.100");
    expect(shortTime("2026-11-28T03:40:00Z")).toBe("03:40:00");
  });
  it("splits around matches", () => {
    expect(splitMatches("a GET b get", "get")).toEqual([
      { text: "a ", match: false }, { text: "GET", match: true }, { text: " b ", match: false }, { text: "get", match: true },
    ]);
    expect(splitMatches("abc", "")).toEqual([{ text: "abc", match: false }]);
  });
});
