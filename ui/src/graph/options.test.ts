import { describe, expect, it } from "vitest";
import { DEFAULT_OPTIONS, graphApiPath, parseGraphOptions, parseSeconds, writeGraphOptions } from "./options";

describe("graph options in the URL", () => {
  it("defaults: versioned app graph, distribution labels, 1m, every 15s, no animation", () => {
    const o = parseGraphOptions(new URLSearchParams("namespace=tutorial"));
    expect(o).toEqual(DEFAULT_OPTIONS);
    expect(o.edgeLabels).toEqual(["trafficDistribution"]);
  });
  it("reads Kiali's parameters", () => {
    const o = parseGraphOptions(new URLSearchParams(
      "graphType=workload&edges=trafficRate,responseTime,rt99&duration=300&refresh=10000&animation=true&injectServiceNodes=false&badgeVS=false&find=app%3Dreviews"));
    expect(o.graphType).toBe("workload");
    expect(o.edgeLabels).toEqual(["trafficRate", "responseTime"]);
    expect(o.responseTime).toBe("rt99");
    expect(o.duration).toBe(300);
    expect(o.refresh).toBe(10000);
    expect(o.animation).toBe(true);
    expect(o.serviceNodes).toBe(false);
    expect(o.vsBadges).toBe(false);
    expect(o.find).toBe("app=reviews");
  });
  it("an empty edges parameter means no labels; unknown values fall back to defaults", () => {
    const o = parseGraphOptions(new URLSearchParams("edges=&graphType=bogus&duration=7&refresh=3"));
    expect(o.edgeLabels).toEqual([]);
    expect(o.graphType).toBe("versionedApp");
    expect(o.duration).toBe(60);
    expect(o.refresh).toBe(15000);
  });
  it("a percentile alone turns response time labels on", () => {
    expect(parseGraphOptions(new URLSearchParams("edges=rt50")).edgeLabels).toEqual(["responseTime"]);
  });
  it("round-trips and keeps other parameters", () => {
    const o = { ...DEFAULT_OPTIONS, edgeLabels: ["trafficRate" as const, "responseTime" as const], responseTime: "avg" as const, duration: 1800 };
    const p = writeGraphOptions(o, new URLSearchParams("namespace=tutorial"));
    expect(p.get("namespace")).toBe("tutorial");
    expect(p.get("edges")).toBe("trafficRate,responseTime,avg");
    expect(parseGraphOptions(p)).toEqual(o);
  });
  it("accepts durations with units", () => {
    expect(parseSeconds("5m")).toBe(300);
    expect(parseSeconds("1h")).toBe(3600);
    expect(parseSeconds("60")).toBe(60);
    expect(parseGraphOptions(new URLSearchParams("duration=10m")).duration).toBe(600);
  });
  it("builds the API call", () => {
    const path = graphApiPath("tutorial", { ...DEFAULT_OPTIONS, responseTime: "rt50" });
    expect(path).toBe("/api/namespaces/tutorial/graph?graphType=versionedApp&duration=60s&responseTime=50&injectServiceNodes=true&idleEdges=false");
  });
});
