import { useMemo, useState, type ReactNode } from "react";
import { useSearchParams } from "react-router-dom";
import type { ApiError } from "../api";
import NamespaceSelect from "./NamespaceSelect";
import { filterByName, sortRows, type SortKey, type SortState } from "./listUtils";
import "./lists.css";

// The frame every list page shares (Kiali's Applications / Workloads / Services lists): title, toolbar with
// namespace, a name filter kept in the URL (`?name=`), a count and a refresh button, an inline notice when
// the API failed (the toast says it too), and the table.

export function useNameFilter(): [string, (v: string) => void] {
  const [params, setParams] = useSearchParams();
  const value = params.get("name") ?? "";
  const set = (v: string) => setParams((p) => {
    const n = new URLSearchParams(p);
    if (v) n.set("name", v); else n.delete("name");
    return n;
  }, { replace: true });
  return [value, set];
}

export function useSort(initial: SortState = { key: "name", asc: true }): [SortState, (k: SortKey) => void] {
  const [sort, setSort] = useState(initial);
  const toggle = (key: SortKey) => setSort((s) => (s.key === key ? { key, asc: !s.asc } : { key, asc: true }));
  return [sort, toggle];
}

export function SortHeader({ label, k, sort, onSort }: { label: string; k: SortKey; sort: SortState; onSort: (k: SortKey) => void }) {
  const active = sort.key === k;
  return (
    <button type="button" className="lp-sort" aria-sort={active ? (sort.asc ? "ascending" : "descending") : undefined} onClick={() => onSort(k)}>
      {label}{active && <span className="lp-sort-arrow" aria-hidden="true">{sort.asc ? "▲" : "▼"}</span>}
    </button>
  );
}

/** The rows a list page shows: `all` filtered by the name filter and sorted (health uses Kiali's order). */
export function useHealthList<T extends { name: string; health?: { status?: string } }>(all: readonly T[]) {
  const [filter, setFilter] = useNameFilter();
  const [sort, onSort] = useSort();
  const rows = useMemo(() => sortRows(filterByName(all, filter), sort, (r) => r.health?.status), [all, filter, sort]);
  return { filter, setFilter, sort, onSort, rows };
}

/** The two sortable header cells every list starts with. */
export function HealthNameHeaders({ sort, onSort }: { sort: SortState; onSort: (k: SortKey) => void }) {
  return (
    <>
      <th className="lp-health-col"><SortHeader label="Health" k="health" sort={sort} onSort={onSort} /></th>
      <th><SortHeader label="Name" k="name" sort={sort} onSort={onSort} /></th>
    </>
  );
}

export default function ListView({ title, filter, onFilter, count, total, loading, error, onRefresh, extraTools, children, what }: {
  title: string; filter: string; onFilter: (v: string) => void; count: number; total: number; loading: boolean;
  error: ApiError | null; onRefresh: () => void; extraTools?: ReactNode; children: ReactNode; what: string;
}) {
  return (
    <div className="list-page">
      <h1>{title}</h1>
      <div className="toolbar lp-toolbar">
        <NamespaceSelect />
        <label>
          Name
          <input type="search" data-testid="name-filter" placeholder="Filter by name" value={filter}
                 onChange={(e) => onFilter(e.target.value)} />
        </label>
        {extraTools}
        <span className="lp-spacer" />
        <span className="lp-count" data-testid="list-count">
          {loading && total === 0 && !error ? "Loading…" : filter ? `${count} of ${total} ${what}` : `${total} ${what}`}
        </span>
        <button type="button" className="lp-refresh" title="Refresh" aria-label="Refresh" onClick={onRefresh}>
          <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true"><path d="M13.5 8a5.5 5.5 0 1 1-1.6-3.9M12 1.5v3h-3" fill="none" stroke="currentColor" strokeWidth="1.8" strokeLinecap="round" strokeLinejoin="round" /></svg>
        </button>
      </div>
      {error && (
        <div className="lp-error" role="status" data-testid="list-error">
          <strong>{error.code === 404 ? `This daemon does not serve the ${what} list yet.` : `Could not load the ${what}.`}</strong>
          <span> {error.message}</span>
          <button type="button" onClick={onRefresh}>Try again</button>
        </div>
      )}
      {children}
    </div>
  );
}

/** The row shown when a table has nothing to show. */
export function EmptyRow({ cols, children }: { cols: number; children: ReactNode }) {
  return <tr><td colSpan={cols} className="lp-empty">{children}</td></tr>;
}
