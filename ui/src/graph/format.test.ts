import { describe, expect, it } from "vitest";
import {
  dotDelayMs, edgeLabel, formatPercent, formatRate, formatResponseTime, nodeBadges, nodeLabel, nodeNumbers, sig2,
} from "./format";
import type { EdgeData, NodeData } from "./types";

const edge = (rates: Record<string, number>, extra: Partial<EdgeData> = {}): EdgeData => ({
  id: "a->b:http", source: "a", target: "b", traffic: { protocol: "http", rates }, ...extra,
});

describe("sig2", () => {
  it("rounds to two significant digits without exponents", () => {
    expect(sig2(4.883)).toBe("4.9");
    expect(sig2(4.98)).toBe("5.0");
    expect(sig2(0.354)).toBe("0.35");
    expect(sig2(12.5)).toBe("13");
    expect(sig2(123)).toBe("120");
    expect(sig2(99.7)).toBe("100");
    expect(sig2(0.0042)).toBe("0.0042");
    expect(sig2(0)).toBe("0");
  });
});

describe("formats", () => {
  it("writes rates, percentages and durations like Kiali", () => {
    expect(formatRate(1.234)).toBe("1.2rps");
    expect(formatPercent(90)).toBe("90.0%");
    expect(formatPercent(7.25)).toBe("7.3%");
    expect(formatResponseTime(0.86)).toBe("0.9ms");
    expect(formatResponseTime(12.5)).toBe("13ms");
    expect(formatResponseTime(999.4)).toBe("999ms");
    expect(formatResponseTime(999.6)).toBe("1s");
    expect(formatResponseTime(1250)).toBe("1.25s");
    expect(formatResponseTime(2000)).toBe("2s");
  });
});

describe("edgeLabel", () => {
  const e = edge({ http: 1.234, httpPercentReq: 90, httpPercentErr: 5 }, { responseTime: 12.4 });
  it("shows the distribution only below 100%", () => {
    expect(edgeLabel(e, ["trafficDistribution"])).toBe("90.0%");
    expect(edgeLabel(edge({ http: 4.9, httpPercentReq: 100 }), ["trafficDistribution"])).toBe("");
    expect(edgeLabel(edge({ http: 4.9 }), ["trafficDistribution"])).toBe("");
  });
  it("puts the error percentage under the rate when non-zero", () => {
    expect(edgeLabel(e, ["trafficRate"])).toBe("1.2rps\n5.0%");
    expect(edgeLabel(edge({ http: 0.354 }), ["trafficRate"])).toBe("0.35rps");
  });
  it("stacks rate, response time and distribution in that order", () => {
    expect(edgeLabel(e, ["trafficDistribution", "responseTime", "trafficRate"])).toBe("1.2rps\n5.0%\n12ms\n90.0%");
    expect(edgeLabel(e, [])).toBe("");
  });
  it("leaves out a missing response time (edges into service nodes)", () => {
    expect(edgeLabel(edge({ http: 2 }), ["responseTime"])).toBe("");
    expect(edgeLabel(edge({ http: 2 }, { responseTime: 1500 }), ["responseTime"])).toBe("1.5s");
  });
  it("writes TCP rates in bytes", () => {
    const tcp: EdgeData = { id: "t", source: "a", target: "b", traffic: { protocol: "tcp", rates: { tcp: 2048 } } };
    expect(edgeLabel(tcp, ["trafficRate", "trafficDistribution"])).toBe("2.0kps");
  });
});

describe("nodeLabel", () => {
  const base = { id: "x", namespace: "tutorial" };
  it("puts the version of a versioned app on its own line", () => {
    expect(nodeLabel({ ...base, nodeType: "app", app: "reviews", version: "v2" })).toBe("reviews\nv2");
    expect(nodeLabel({ ...base, nodeType: "app", app: "reviews" })).toBe("reviews");
  });
  it("names workloads, services, boxes and unknown nodes", () => {
    expect(nodeLabel({ ...base, nodeType: "workload", workload: "reviews-v2", app: "reviews" })).toBe("reviews-v2");
    expect(nodeLabel({ ...base, nodeType: "service", service: "reviews" })).toBe("reviews");
    expect(nodeLabel({ ...base, nodeType: "box", app: "reviews" })).toBe("reviews");
    expect(nodeLabel({ id: "unknown", nodeType: "unknown", namespace: "unknown" }, "tutorial")).toBe("unknown");
  });
  it("adds the namespace of nodes outside the graphed one", () => {
    expect(nodeLabel({ id: "y", nodeType: "service", namespace: "istio-system", service: "istiod" }, "tutorial"))
      .toBe("istiod\n(istio-system)");
  });
});

describe("nodeBadges", () => {
  const n: NodeData = {
    id: "s", nodeType: "service", namespace: "t", isRoot: true, hasVS: { hostnames: ["reviews"] },
    hasTrafficShifting: true, hasFaultInjection: true, hasMirroring: true, hasCB: true, hasRequestTimeout: true,
  };
  it("lists the badges in drawing order", () => {
    expect(nodeBadges(n, true)).toEqual(["root", "vs", "trafficShifting", "faultInjection", "mirroring", "cb", "timeout"]);
  });
  it("keeps only the traffic source mark without virtual service badges", () => {
    expect(nodeBadges(n, false)).toEqual(["root"]);
    expect(nodeBadges({ id: "b", nodeType: "box", namespace: "t", isRoot: true }, true)).toEqual([]);
  });
});

describe("nodeNumbers", () => {
  it("sums rates and errors per direction", () => {
    const n: NodeData = {
      id: "a", nodeType: "app", namespace: "t",
      traffic: [{ protocol: "http", rates: { httpIn: 10, httpIn5xx: 1, httpIn4xx: 0.5, httpOut: 4 } }],
    };
    expect(nodeNumbers(n)).toMatchObject({ httpIn: 10, httpOut: 4, errIn: 1.5, errOut: 0 });
  });
});

describe("dotDelayMs", () => {
  it("is inversely proportional to the rate, within 40 ms .. 5 s", () => {
    expect(dotDelayMs(0)).toBe(5000);
    expect(dotDelayMs(0.1)).toBe(5000);
    expect(dotDelayMs(4)).toBe(250);
    expect(dotDelayMs(1000)).toBe(40);
  });
});
