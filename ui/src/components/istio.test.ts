import { describe, expect, it } from "vitest";
import { age, itemKey, rowTestIds } from "./istio";

describe("rowTestIds", () => {
  it("keeps row-<name> unique: the VirtualService wins over a DestinationRule of the same name", () => {
    const items = [
      { namespace: "tutorial", kind: "DestinationRule", name: "reviews" },
      { namespace: "tutorial", kind: "VirtualService", name: "reviews" },
      { namespace: "tutorial", kind: "Gateway", name: "bookinfo-gateway" },
      { namespace: "zoo", kind: "VirtualService", name: "reviews" },
    ];
    const ids = rowTestIds(items);
    expect(ids.get(itemKey(items[1]))).toBe("row-reviews");
    expect(ids.get(itemKey(items[0]))).toBe("row-tutorial/DestinationRule/reviews");
    expect(ids.get(itemKey(items[3]))).toBe("row-zoo/VirtualService/reviews");
    expect(ids.get(itemKey(items[2]))).toBe("row-bookinfo-gateway");
    expect(new Set(ids.values()).size).toBe(items.length);
  });
});

describe("age", () => {
  it("formats ages", () => {
    const now = Date.parse("2026-11-28T04:00:00Z");
    expect(age("2026-11-28T03:59:30Z", now)).toBe("30s");
    expect(age("2026-11-28T03:35:00Z", now)).toBe("25m");
    expect(age("2026-11-28T01:30:00Z", now)).toBe("2h 30m");
    expect(age("2026-11-25T04:00:00Z", now)).toBe("3d");
    expect(age(undefined, now)).toBe("");
  });
});
