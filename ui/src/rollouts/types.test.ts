import { describe, expect, it } from "vitest";
import { stepText, weightSteps, type RolloutRow } from "./types";

describe("weightSteps", () => {
  it("holds each weight until the next update, then until now", () => {
    const pts = weightSteps([{ time: "2026-12-03T10:00:00Z", weight: 10 }, { time: "2026-12-03T10:01:00Z", weight: 20 }],
      Date.parse("2026-12-03T10:02:00Z"));
    expect(pts.map((p) => p.w)).toEqual([10, 10, 20, 20]);
    expect(pts[1].t).toBe(Date.parse("2026-12-03T10:01:00Z"));
    expect(pts[3].t).toBe(Date.parse("2026-12-03T10:02:00Z"));
  });
  it("is empty without history", () => expect(weightSteps([], 0)).toEqual([]));
});

describe("stepText", () => {
  it("shows index/total as kubectl argo rollouts does", () => {
    expect(stepText({ currentStepIndex: 2, stepCount: 8 } as RolloutRow)).toBe("2/8");
    expect(stepText({ currentStepIndex: null, stepCount: 8 } as RolloutRow)).toBe("-");
  });
});
