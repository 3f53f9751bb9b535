import { describe, expect, it } from "vitest";
import { filterByName, healthRank, podsText, sortRows } from "./listUtils";

const rows = [
  { name: "reviews-v2", h: "Healthy" }, { name: "details-v1", h: "Failure" }, { name: "reviews-v3", h: "Degraded" },
  { name: "ratings-v1", h: "NA" },
];

describe("list helpers", () => {
  it("filters by any of the words", () => {
    expect(filterByName(rows, "").length).toBe(4);
    expect(filterByName(rows, "REVIEWS").map((r) => r.name)).toEqual(["reviews-v2", "reviews-v3"]);
    expect(filterByName(rows, "v1, v3").map((r) => r.name)).toEqual(["details-v1", "reviews-v3", "ratings-v1"]);
  });
  it("sorts by name or by health severity", () => {
    expect(sortRows(rows, { key: "name", asc: true }, (r) => r.h).map((r) => r.name))
      .toEqual(["details-v1", "ratings-v1", "reviews-v2", "reviews-v3"]);
    expect(sortRows(rows, { key: "health", asc: true }, (r) => r.h).map((r) => r.name))
      .toEqual(["details-v1", "reviews-v3", "reviews-v2", "ratings-v1"]);
    expect(sortRows(rows, { key: "name", asc: false }, (r) => r.h)[0].name).toBe("reviews-v3");
  });
  it("ranks health like Kiali", () => {
    expect(healthRank("Failure")).toBeLessThan(healthRank("Degraded"));
    expect(healthRank(undefined)).toBe(3);
    expect(podsText(1, 2)).toBe("1/2");
  });
});
