// Pure helpers of the list pages: name filtering, health ordering, sorting.

/** Kiali's health severity order: Failure first, then Degraded, Healthy, no information. */
export function healthRank(status: string | undefined): number {
  switch (status) {
    case "Failure": return 0;
    case "Degraded": return 1;
    case "Healthy": return 2;
    default: return 3;
  }
}

/**
 * Rows whose name contains one of the filter's words (comma or space separated, case-insensitive);
 * an empty filter keeps everything.
 */
export function filterByName<T extends { name: string }>(rows: readonly T[], filter: string): T[] {
  const words = filter.toLowerCase().split(/[\s,]+/).filter(Boolean);
  if (!words.length) return [...rows];
  return rows.filter((r) => words.some((w) => r.name.toLowerCase().includes(w)));
}

export type SortKey = "name" | "health";
export interface SortState { key: SortKey; asc: boolean }

export function sortRows<T extends { name: string }>(rows: readonly T[], sort: SortState, health: (r: T) => string | undefined): T[] {
  const out = [...rows];
  out.sort((a, b) => {
    let c = 0;
    if (sort.key === "health") c = healthRank(health(a)) - healthRank(health(b));
    if (c === 0) c = a.name.localeCompare(b.name);
    return sort.asc ? c : -c;
  });
  return out;
}

/** "1/1", "0/2": ready pods over desired replicas. */
export function podsText(ready: number, desired: number): string {
  return `${ready}/${desired}`;
}
