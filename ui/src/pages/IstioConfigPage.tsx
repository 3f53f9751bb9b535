import { useCallback, useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { api, enc } from "../api";
import { onLoggedIn } from "../auth";
import KindBadge from "../components/KindBadge";
import ValidationIcon from "../components/ValidationIcon";
import { ISTIO_KINDS, detailPath, itemKey, rowTestIds, type IstioItem } from "../components/istio";
import "../components/details.css";

const NS_KEY = "sluice.namespace";
const ALL = "__all__";
type SortKey = "name" | "namespace" | "kind" | "config";

const validityRank = (i: IstioItem) => {
  const s = i.validation?.status;
  return s === "NotValid" ? 0 : s === "Warning" ? 1 : s === "Valid" ? 2 : 3;
};

// Kiali's Istio Config list: Name, Namespace, Type, Configuration (validation), filters by type, name, config.
export default function IstioConfigPage() {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const all = params.get("all") === "true";
  const ns = params.get("namespace") || localStorage.getItem(NS_KEY) || "default";
  const [namespaces, setNamespaces] = useState<string[]>([]);
  const [items, setItems] = useState<IstioItem[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const typeFilter = params.get("type") ?? "";
  const configFilter = params.get("config") ?? "";
  const [nameFilter, setNameFilter] = useState(params.get("name") ?? "");
  const [sort, setSort] = useState<{ key: SortKey; asc: boolean }>({ key: "name", asc: true });

  const setParam = useCallback((k: string, v: string | null) => {
    setParams((p) => { const n = new URLSearchParams(p); if (v) n.set(k, v); else n.delete(k); return n; }, { replace: true });
  }, [setParams]);

  useEffect(() => {
    api.get<{ namespaces: { name: string }[] }>("/api/namespaces")
      .then((d) => setNamespaces(d.namespaces.map((n) => n.name))).catch(() => setNamespaces([]));
  }, []);

  const load = useCallback(() => {
    setLoading(true);
    api.get<{ items: IstioItem[] }>(all ? "/api/istio/config" : `/api/istio/config?namespace=${enc(ns)}`)
      .then((d) => { setItems(d.items ?? []); setError(null); })
      .catch((e: Error) => { setError(e.message); setItems([]); })
      .finally(() => setLoading(false));
  }, [all, ns]);
  useEffect(load, [load]);
  useEffect(() => onLoggedIn(load), [load]); // reload what a 401 left empty

  const chooseNamespace = (v: string) => {
    setParams((p) => {
      const n = new URLSearchParams(p);
      if (v === ALL) n.set("all", "true");
      else { n.delete("all"); n.set("namespace", v); localStorage.setItem(NS_KEY, v); }
      return n;
    });
  };

  const kinds = useMemo(() => {
    const s = new Set(ISTIO_KINDS);
    (items ?? []).forEach((i) => s.add(i.kind));
    return [...s].sort();
  }, [items]);

  const rows = useMemo(() => {
    const needle = nameFilter.trim().toLowerCase();
    const list = (items ?? []).filter((i) =>
      (!typeFilter || i.kind === typeFilter) &&
      (!needle || i.name.toLowerCase().includes(needle)) &&
      (!configFilter || (configFilter === "NotValidated" ? !i.validation : i.validation?.status === configFilter)));
    const cmp = (a: IstioItem, b: IstioItem): number => {
      switch (sort.key) {
        case "namespace": return a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);
        case "kind": return a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name);
        case "config": return validityRank(a) - validityRank(b)
          || (b.validation?.checks?.length ?? 0) - (a.validation?.checks?.length ?? 0) || a.name.localeCompare(b.name);
        default: return a.name.localeCompare(b.name) || a.namespace.localeCompare(b.namespace) || a.kind.localeCompare(b.kind);
      }
    };
    return list.sort((a, b) => (sort.asc ? cmp(a, b) : -cmp(a, b)));
  }, [items, typeFilter, configFilter, nameFilter, sort]);

  const testIds = useMemo(() => rowTestIds(rows), [rows]);
  const header = (key: SortKey, label: string) => (
    <th aria-sort={sort.key === key ? (sort.asc ? "ascending" : "descending") : "none"}>
      <button className="th-sort" onClick={() => setSort((s) => ({ key, asc: s.key === key ? !s.asc : true }))}>
        {label}<span className="sort-arrow">{sort.key === key ? (sort.asc ? "▲" : "▼") : ""}</span>
      </button>
    </th>
  );

  const nsOptions = namespaces.includes(ns) ? namespaces : [ns, ...namespaces];
  const filtered = typeFilter || nameFilter || configFilter;
  return (
    <div className="istio-config-page">
      <div className="page-title-row">
        <h1>Istio Config</h1>
        <button className="primary" data-testid="create" onClick={() => navigate(`/istio/new?namespace=${enc(ns)}`)}>Create</button>
      </div>
      <div className="toolbar">
        <label>
          Namespace
          <select data-testid="namespace-select" value={all ? ALL : ns} onChange={(e) => chooseNamespace(e.target.value)}>
            <option value={ALL}>All namespaces</option>
            {nsOptions.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
        <label>
          Type
          <select data-testid="filter-type" value={typeFilter} onChange={(e) => setParam("type", e.target.value)}>
            <option value="">All types</option>
            {kinds.map((k) => <option key={k} value={k}>{k}</option>)}
          </select>
        </label>
        <label>
          Config
          <select data-testid="filter-config" value={configFilter} onChange={(e) => setParam("config", e.target.value)}>
            <option value="">Any</option>
            <option value="Valid">Valid</option>
            <option value="Warning">Warning</option>
            <option value="NotValid">Not Valid</option>
            <option value="NotValidated">Not Validated</option>
          </select>
        </label>
        <label>
          Name
          <input type="search" data-testid="filter-name" placeholder="Filter by name" value={nameFilter}
            onChange={(e) => { setNameFilter(e.target.value); setParam("name", e.target.value); }} />
        </label>
        {filtered && <button className="link-button" onClick={() => { setNameFilter(""); setParams((p) => { const n = new URLSearchParams(p); n.delete("type"); n.delete("config"); n.delete("name"); return n; }, { replace: true }); }}>Clear all filters</button>}
        <span className="toolbar-spacer" />
        <button onClick={load} disabled={loading} title="Refresh">{loading ? "Loading…" : "Refresh"}</button>
      </div>
      {error && <div className="inline-alert inline-alert-danger">Could not load Istio config: {error}</div>}
      {items === null ? <div className="empty">Loading…</div> : (
        <table className="list" data-testid="istio-config-list">
          <thead>
            <tr>{header("name", "Name")}{header("namespace", "Namespace")}{header("kind", "Type")}{header("config", "Configuration")}</tr>
          </thead>
          <tbody>
            {rows.map((i) => (
              <tr key={itemKey(i)} data-testid={testIds.get(itemKey(i))} data-kind={i.kind} data-namespace={i.namespace} data-name={i.name}>
                <td><KindBadge kind={i.kind} /><Link to={detailPath(i.namespace, i.kind, i.name)}>{i.name}</Link></td>
                <td><KindBadge kind="Namespace" />{i.namespace}</td>
                <td>{i.kind}</td>
                <td><ValidationIcon validation={i.validation} /></td>
              </tr>
            ))}
            {rows.length === 0 && (
              <tr><td colSpan={4} className="empty">
                {items.length === 0 ? `No Istio config in ${all ? "any namespace" : `namespace ${ns}`}.` : "No Istio config matches the filters."}
              </td></tr>
            )}
          </tbody>
        </table>
      )}
      {items !== null && items.length > 0 && <div className="list-footer muted">{rows.length} of {items.length} items</div>}
    </div>
  );
}
