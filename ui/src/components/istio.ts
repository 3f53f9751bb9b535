// Types of the Istio config API (docs/console-api.md § Istio config) and small helpers shared by the pages.
import type { Validation } from "./ValidationIcon";

export interface IstioItem {
  kind: string; apiVersion: string; name: string; namespace: string; resourceVersion?: string; createdAt?: string;
  labels?: Record<string, string>; validation?: Validation;
}
export interface IstioDetail extends IstioItem { object: Record<string, unknown>; yaml: string; warnings?: string[] }

export const detailPath = (ns: string, kind: string, name: string) =>
  `/namespaces/${encodeURIComponent(ns)}/istio/${encodeURIComponent(kind)}/${encodeURIComponent(name)}`;
export const apiDetailPath = (ns: string, kind: string, name: string) => `/api${detailPath(ns, kind, name)}`;

/** Kiali's Istio Config type filter values that this console can hold. */
export const ISTIO_KINDS = [
  "AuthorizationPolicy", "DestinationRule", "EnvoyFilter", "Gateway", "PeerAuthentication", "RequestAuthentication",
  "ServiceEntry", "Sidecar", "Telemetry", "VirtualService", "WasmPlugin", "WorkloadEntry", "WorkloadGroup",
];

/** "3 minutes ago"-style age of a timestamp. */
export function age(iso?: string, now = Date.now()): string {
  if (!iso) return "";
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${s % 3600 >= 60 ? ` ${Math.floor((s % 3600) / 60)}m` : ""}`;
  return `${Math.floor(s / 86400)}d`;
}

const KIND_PRIORITY = ["VirtualService", "DestinationRule", "Gateway", "ServiceEntry"];
const kindRank = (k: string) => { const i = KIND_PRIORITY.indexOf(k); return i < 0 ? KIND_PRIORITY.length : i; };
export const itemKey = (i: { namespace: string; kind: string; name: string }) => `${i.namespace}/${i.kind}/${i.name}`;

/**
 * `data-testid`s of list rows that stay unique when objects of several kinds (or namespaces) share a name
 * (VirtualService `reviews` and DestinationRule `reviews`): the first by kind (VirtualService, DestinationRule,
 * Gateway, ServiceEntry, others) then namespace gets `row-<name>`, the others `row-<namespace>/<Kind>/<name>`.
 */
export function rowTestIds(items: { namespace: string; kind: string; name: string }[]): Map<string, string> {
  const byName = new Map<string, { namespace: string; kind: string; name: string }[]>();
  for (const i of items) byName.set(i.name, [...(byName.get(i.name) ?? []), i]);
  const out = new Map<string, string>();
  for (const [name, group] of byName) {
    const sorted = [...group].sort((a, b) => kindRank(a.kind) - kindRank(b.kind) || a.kind.localeCompare(b.kind) || a.namespace.localeCompare(b.namespace));
    sorted.forEach((i, n) => out.set(itemKey(i), n === 0 ? `row-${name}` : `row-${itemKey(i)}`));
  }
  return out;
}
