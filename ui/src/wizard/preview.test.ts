import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { wizardObjects, wizardPreviewYaml } from "./preview";

const ws = [
  { name: "reviews-v1", version: "v1", weight: 0 },
  { name: "reviews-v2", version: "v2", weight: 80 },
  { name: "reviews-v3", version: "v3", weight: 20 },
];

describe("wizard preview", () => {
  it("writes Kiali's traffic-shifting objects", () => {
    const { destinationRule: dr, virtualService: vs } = wizardObjects("reviews", "tutorial", undefined, ws);
    expect(dr.spec.host).toBe("reviews.tutorial.svc.cluster.local");
    expect(dr.spec.subsets.map((s) => s.name)).toEqual(["v1", "v2", "v3"]);
    expect(dr.metadata.labels).toEqual({ kiali_wizard: "traffic_shifting" });
    expect(vs.spec.hosts).toEqual(["reviews"]);
    expect(vs.spec.http[0].route).toEqual([
      { destination: { host: "reviews.tutorial.svc.cluster.local", subset: "v2" }, weight: 80 },
      { destination: { host: "reviews.tutorial.svc.cluster.local", subset: "v3" }, weight: 20 },
    ]);
  });
  it("renders two YAML documents", () => {
    const docs = parseAllDocuments(wizardPreviewYaml("reviews", "tutorial", "reviews.tutorial.svc.cluster.local", ws));
    expect(docs.map((d) => (d.toJS() as { kind: string }).kind)).toEqual(["DestinationRule", "VirtualService"]);
  });
});
