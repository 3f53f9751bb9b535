import { describe, expect, it } from "vitest";
import { NODE_SIZE, badgeImage, badgeLayout } from "./badges";

describe("badgeLayout", () => {
  it("keeps every badge inside the node", () => {
    for (const shape of ["round-rectangle", "ellipse", "triangle"] as const) {
      for (let n = 1; n <= 7; n++) {
        const pos = badgeLayout(n, shape);
        expect(pos).toHaveLength(n);
        for (const p of pos) {
          expect(p.x).toBeGreaterThanOrEqual(0);
          expect(p.y).toBeGreaterThanOrEqual(0);
          expect(p.x + p.size).toBeLessThanOrEqual(NODE_SIZE);
          expect(p.y + p.size).toBeLessThanOrEqual(NODE_SIZE);
        }
      }
    }
  });
  it("builds one cached data: URI per combination", () => {
    const a = badgeImage(["vs", "trafficShifting"], "triangle");
    expect(a).toMatch(/^data:image\/svg\+xml;utf8,/);
    expect(decodeURIComponent(a)).toContain('width="44"');
    expect(badgeImage(["vs", "trafficShifting"], "triangle")).toBe(a);
    expect(badgeImage(["vs"], "triangle")).not.toBe(a);
  });
});
