import { describe, expect, it } from "vitest";
import { buildElements, diffElements, signature, type CurrentElement, type ElementDef } from "./elements";
import type { GraphResponse } from "./types";

function graph(split: [number, number], extraNode = false): GraphResponse {
  const nodes = [
    { data: { id: "box:t:reviews", nodeType: "box" as const, namespace: "t", app: "reviews", isBox: "app" } },
    { data: { id: "svc:t:reviews", nodeType: "service" as const, namespace: "t", service: "reviews", hasVS: { hostnames: ["reviews"] }, hasTrafficShifting: true } },
    { data: { id: "app:t:reviews:v2", nodeType: "app" as const, namespace: "t", app: "reviews", version: "v2", parent: "box:t:reviews" } },
    { data: { id: "app:t:reviews:v3", nodeType: "app" as const, namespace: "t", app: "reviews", version: "v3", parent: "box:t:reviews" } },
  ];
  if (extraNode) nodes.push({ data: { id: "app:t:reviews:v1", nodeType: "app" as const, namespace: "t", app: "reviews", version: "v1", parent: "box:t:reviews" } });
  return {
    timestamp: 1, duration: 60, graphType: "versionedApp", namespace: "t",
    elements: {
      nodes,
      edges: [
        { data: { id: "svc->v2", source: "svc:t:reviews", target: "app:t:reviews:v2", traffic: { protocol: "http", rates: { http: split[0] / 10, httpPercentReq: split[0] } } } },
        { data: { id: "svc->v3", source: "svc:t:reviews", target: "app:t:reviews:v3", traffic: { protocol: "http", rates: { http: split[1] / 10, httpPercentReq: split[1] } } } },
      ],
    },
  };
}

const ro = { edgeLabels: ["trafficDistribution" as const], vsBadges: true };

function asCurrent(els: ElementDef[]): Map<string, CurrentElement> {
  return new Map(els.map((e) => [e.data.id, {
    group: e.group, sig: signature(e.data), parent: e.data.parent as string | undefined,
    source: e.data.source as string | undefined, target: e.data.target as string | undefined,
  }]));
}

describe("buildElements", () => {
  it("adds the drawn labels, health and badges", () => {
    const els = buildElements(graph([90, 10]), ro);
    const byId = new Map(els.map((e) => [e.data.id, e.data]));
    expect(byId.get("app:t:reviews:v2")?.label).toBe("reviews\nv2");
    expect(byId.get("svc->v2")?.label).toBe("90.0%");
    expect(byId.get("svc->v3")?.label).toBe("10.0%");
    expect(byId.get("svc:t:reviews")?.badges).toBe("vs trafficShifting");
    expect(String(byId.get("svc:t:reviews")?.badgeImage)).toMatch(/^data:image\/svg\+xml;utf8,/);
    expect(byId.get("app:t:reviews:v2")?.health).toBe("NA");
    expect(byId.get("app:t:reviews:v2")?.badgeImage).toBeUndefined();
  });
  it("drops edges to missing nodes and parents that are not there", () => {
    const g = graph([90, 10]);
    g.elements.nodes.shift(); // no box
    g.elements.edges.push({ data: { id: "x", source: "nope", target: "svc:t:reviews" } });
    const els = buildElements(g, ro);
    expect(els.find((e) => e.data.id === "x")).toBeUndefined();
    expect(els.find((e) => e.data.id === "app:t:reviews:v2")?.data.parent).toBeUndefined();
  });
});

describe("diffElements", () => {
  it("updates changed labels in place without a new layout", () => {
    const cur = asCurrent(buildElements(graph([90, 10]), ro));
    const d = diffElements(cur, buildElements(graph([80, 20]), ro));
    expect(d.relayout).toBe(false);
    expect(d.add).toEqual([]);
    expect(d.remove).toEqual([]);
    expect(d.update.map((e) => e.data.id).sort()).toEqual(["svc->v2", "svc->v3"]);
  });
  it("does nothing for an identical graph", () => {
    const cur = asCurrent(buildElements(graph([90, 10]), ro));
    const d = diffElements(cur, buildElements(graph([90, 10]), ro));
    expect(d).toEqual({ add: [], remove: [], update: [], move: [], relayout: false });
  });
  it("lays out again when nodes come or go", () => {
    const cur = asCurrent(buildElements(graph([90, 10]), ro));
    const more = diffElements(cur, buildElements(graph([90, 10], true), ro));
    expect(more.relayout).toBe(true);
    expect(more.add.map((e) => e.data.id)).toEqual(["app:t:reviews:v1"]);
    const curMore = asCurrent(buildElements(graph([90, 10], true), ro));
    const fewer = diffElements(curMore, buildElements(graph([90, 10]), ro));
    expect(fewer.relayout).toBe(true);
    expect(fewer.remove).toEqual(["app:t:reviews:v1"]);
  });
  it("new edges alone keep the layout", () => {
    const g = graph([90, 10]);
    const cur = asCurrent(buildElements(g, ro));
    g.elements.edges.push({ data: { id: "v2->v3", source: "app:t:reviews:v2", target: "app:t:reviews:v3" } });
    const d = diffElements(cur, buildElements(g, ro));
    expect(d.relayout).toBe(false);
    expect(d.add.map((e) => e.data.id)).toEqual(["v2->v3"]);
  });
  it("moves a node whose box changed", () => {
    const g = graph([90, 10]);
    const cur = asCurrent(buildElements(g, ro));
    delete g.elements.nodes[2].data.parent;
    const d = diffElements(cur, buildElements(g, ro));
    expect(d.move).toEqual([{ id: "app:t:reviews:v2", parent: null }]);
    expect(d.relayout).toBe(true);
  });
  it("label mode changes are data updates", () => {
    const cur = asCurrent(buildElements(graph([90, 10]), ro));
    const d = diffElements(cur, buildElements(graph([90, 10]), { edgeLabels: ["trafficRate"], vsBadges: false }));
    expect(d.relayout).toBe(false);
    expect(d.update.map((e) => e.data.id).sort()).toEqual(["svc->v2", "svc->v3", "svc:t:reviews"]);
  });
});
