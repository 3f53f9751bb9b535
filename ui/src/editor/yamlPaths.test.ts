import { describe, expect, it } from "vitest";
import {
  ensureResourceVersion, lineOf, locateField, parseFieldPath, serverErrorDiagnostics, setField, valueRange,
  yamlSyntaxErrors, parseObject,
} from "./yamlPaths";
import { CREATE_KINDS, template } from "./templates";

const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: tutorial
  resourceVersion: '148'
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v2
      weight: 80
    - destination:
        host: reviews
        subset: v3
      weight: 10
`;

describe("parseFieldPath", () => {
  it("splits Kubernetes and Kiali paths", () => {
    expect(parseFieldPath("spec.http[0].route")).toEqual(["spec", "http", 0, "route"]);
    expect(parseFieldPath("spec/http[0]/route")).toEqual(["spec", "http", 0, "route"]);
    expect(parseFieldPath("spec.http[0].route[1].weight")).toEqual(["spec", "http", 0, "route", 1, "weight"]);
    expect(parseFieldPath("metadata.labels[app.kubernetes.io/name]")).toEqual(["metadata", "labels", "app.kubernetes.io/name"]);
    expect(parseFieldPath("metadata.annotations['a.b/c']")).toEqual(["metadata", "annotations", "a.b/c"]);
    expect(parseFieldPath("")).toEqual([]);
  });
});

describe("locateField", () => {
  it("finds the route: line under the first http entry", () => {
    const s = locateField(VS, "spec.http[0].route");
    expect(s.line).toBe(11);
    expect(VS.slice(s.from, s.to)).toBe("- route:");
    expect(s.exact).toBe(true);
  });
  it("finds keys, list items and nested fields", () => {
    expect(locateField(VS, "spec.hosts").line).toBe(8);
    expect(locateField(VS, "spec.hosts[0]").line).toBe(9);
    expect(locateField(VS, "spec.http[0].route[1].weight").line).toBe(19);
    expect(locateField(VS, "spec/http[0]/route[1]/destination/subset").line).toBe(18);
    expect(locateField(VS, "metadata.name").line).toBe(4);
  });
  it("falls back to the deepest existing part, then line 1", () => {
    const s = locateField(VS, "spec.http[0].route[7].weight");
    expect(s.line).toBe(11);
    expect(s.exact).toBe(false);
    expect(locateField(VS, "nothing.here").line).toBe(1);
    expect(locateField(VS, "").line).toBe(1);
    expect(locateField(VS, undefined).line).toBe(1);
    expect(locateField("a: [", "spec").line).toBe(1);
  });
});

describe("yamlSyntaxErrors", () => {
  it("accepts a valid object", () => {
    expect(yamlSyntaxErrors(VS)).toEqual([]);
  });
  it("reports syntax errors with their line", () => {
    const bad = "apiVersion: v1\nkind: X\nmetadata:\n  name: [a\nspec: {}\n";
    const errs = yamlSyntaxErrors(bad);
    expect(errs.length).toBeGreaterThan(0);
    expect(errs[0].severity).toBe("error");
    const bad2 = "a: 1\n  b: 2\n";
    expect(yamlSyntaxErrors(bad2).length).toBeGreaterThan(0);
    expect(yamlSyntaxErrors("a: 1\na: 2\n")[0].line).toBe(2);
  });
  it("requires one mapping", () => {
    expect(yamlSyntaxErrors("")[0].message).toMatch(/empty/);
    expect(yamlSyntaxErrors("- a\n- b\n")[0].message).toMatch(/mapping/);
    expect(yamlSyntaxErrors("a: 1\n---\nb: 2\n").length).toBeGreaterThan(0);
  });
});

describe("serverErrorDiagnostics", () => {
  const message = 'VirtualService.networking.istio.io "reviews" is invalid: spec.http[0].route: Invalid value: 90: total destination weight 90 != 100';
  it("puts the server's message on the line of causes[].field", () => {
    const d = serverErrorDiagnostics(VS, message, { details: { causes: [{ field: "spec.http[0].route", message: "Invalid value: 90" }] } });
    expect(d).toHaveLength(1);
    expect(d[0].line).toBe(11);
    expect(d[0].message).toBe(message);
  });
  it("uses the field named in the message when there are no causes", () => {
    expect(serverErrorDiagnostics(VS, message)[0].line).toBe(11);
    expect(serverErrorDiagnostics(VS, "conflict")[0].line).toBe(1);
  });
  it("gives one diagnostic per cause", () => {
    const d = serverErrorDiagnostics(VS, "two problems", {
      details: { causes: [{ field: "spec.hosts", message: "bad host" }, { field: "metadata.name", message: "bad name" }] },
    });
    expect(d.map((x) => x.line)).toEqual([8, 4]);
    expect(d[0].message).toBe("spec.hosts: bad host");
  });
});

describe("editing helpers", () => {
  it("keeps or restores metadata.resourceVersion", () => {
    expect(ensureResourceVersion(VS, "999")).toBe(VS);
    const without = VS.replace("  resourceVersion: '148'\n", "");
    const fixed = ensureResourceVersion(without, "148");
    expect((parseObject(fixed)!.metadata as Record<string, unknown>).resourceVersion).toBe("148");
    expect(ensureResourceVersion("a: [", "1")).toBe("a: [");
  });
  it("sets a field", () => {
    const t = setField(VS, ["metadata", "namespace"], "other");
    expect((parseObject(t)!.metadata as Record<string, unknown>).namespace).toBe("other");
  });
  it("finds a block's value range (for folding)", () => {
    const t = "metadata:\n  name: a\n  managedFields:\n  - manager: x\n    operation: Update\nspec: {}\n";
    const r = valueRange(t, "metadata.managedFields")!;
    expect(lineOf(t, r.keyLineEnd)).toBe(3);
    expect(t.slice(r.keyLineEnd, r.end)).toBe("\n  - manager: x\n    operation: Update");
    expect(valueRange(t, "metadata.labels")).toBeNull();
  });
  it("has a valid template per kind", () => {
    for (const k of CREATE_KINDS) {
      const t = template(k, "tutorial");
      expect(yamlSyntaxErrors(t)).toEqual([]);
      const o = parseObject(t)!;
      expect(o.kind).toBe(k);
      expect((o.metadata as Record<string, unknown>).namespace).toBe("tutorial");
    }
  });
});
