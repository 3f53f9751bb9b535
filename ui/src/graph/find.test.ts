import { describe, expect, it } from "vitest";
import { compileFind } from "./find";

const v2 = { id: "a", nodeType: "app", app: "reviews", version: "v2", namespace: "t", healthStatus: "Healthy", hasTrafficShifting: true,
  traffic: [{ protocol: "http", rates: { httpIn: 4.5, httpOut: 4.5 } }] };
const v3 = { id: "b", nodeType: "app", app: "reviews", version: "v3", namespace: "t", healthStatus: "Degraded",
  traffic: [{ protocol: "http", rates: { httpIn: 0.5 } }] };
const svc = { id: "c", nodeType: "service", service: "reviews", namespace: "t", healthStatus: "Healthy" };
const edge = { id: "e", source: "c", target: "a", responseTime: 1200, traffic: { protocol: "http", rates: { http: 4.5, httpPercentReq: 90, httpPercentErr: 2 } } };

describe("compileFind", () => {
  it("matches node attributes with = and !=", () => {
    const c = compileFind("version = v3")!;
    expect(c.target).toBe("node");
    expect([v2, v3, svc].filter(c.test).map((n) => n.id)).toEqual(["b"]);
    expect([v2, v3].filter(compileFind("version != v3")!.test).map((n) => n.id)).toEqual(["a"]);
  });
  it("compares numbers and combines with and / or", () => {
    expect([v2, v3].filter(compileFind("httpin > 1")!.test).map((n) => n.id)).toEqual(["a"]);
    expect([v2, v3, svc].filter(compileFind("node = service or version = v2")!.test).map((n) => n.id)).toEqual(["a", "c"]);
    expect([v2, v3, svc].filter(compileFind("app = reviews and httpin < 1")!.test).map((n) => n.id)).toEqual(["b"]);
  });
  it("knows unary flags and negation", () => {
    expect([v2, v3, svc].filter(compileFind("! healthy")!.test).map((n) => n.id)).toEqual(["b"]);
    expect([v2, v3, svc].filter(compileFind("trafficshifting")!.test).map((n) => n.id)).toEqual(["a"]);
    expect([v2, v3, svc].filter(compileFind("not trafficshifting")!.test).map((n) => n.id)).toEqual(["b", "c"]);
  });
  it("has string operators", () => {
    expect(compileFind("name ^= rev")!.test(svc)).toBe(true);
    expect(compileFind("name $= views")!.test(svc)).toBe(true);
    expect(compileFind("name *= vie")!.test(svc)).toBe(true);
    expect(compileFind("name !*= vie")!.test(svc)).toBe(false);
  });
  it("tests edges", () => {
    const slow = compileFind("rt > 1000")!;
    expect(slow.target).toBe("edge");
    expect(slow.test(edge)).toBe(true);
    expect(compileFind("%httptraffic >= 90 and %httperr > 1")!.test(edge)).toBe(true);
  });
  it("reports mistakes", () => {
    expect(compileFind("  ")).toBeNull();
    expect(() => compileFind("colour = red")).toThrow(/unknown attribute/);
    expect(() => compileFind("app")).toThrow(/needs an operator/);
    expect(() => compileFind("app = reviews and rt > 5")).toThrow(/not both/);
    expect(() => compileFind("healthy = yes")).toThrow(/no operator/);
  });
});
