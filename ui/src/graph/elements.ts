// From the API's graph JSON to the element definitions Cytoscape draws, and the diff that lets the
// page update a live graph in place (labels and colours change, positions stay) instead of rebuilding
// it: only a change in the set of nodes (or a node's parent box) asks for a new layout.
import { badgeImage } from "./badges";
import { edgeLabel, edgeNumbers, nodeBadges, nodeLabel, type EdgeLabelMode } from "./format";
import type { EdgeData, GraphResponse, NodeData } from "./types";

export interface RenderOptions {
  edgeLabels: readonly EdgeLabelMode[];
  vsBadges: boolean;
}

export interface ElementDef {
  group: "nodes" | "edges";
  data: Record<string, unknown> & { id: string };
}

/** Node data plus what the style sheet reads: `label`, `badges`, `badgeImage`, `health`. */
export function nodeElement(n: NodeData, namespace: string, ro: RenderOptions): ElementDef {
  const badges = nodeBadges(n, ro.vsBadges);
  const data: ElementDef["data"] = {
    ...n,
    label: nodeLabel(n, namespace),
    health: n.healthStatus ?? "NA",
    badges: badges.join(" "),
  };
  const shape = n.nodeType === "service" ? "triangle" : n.nodeType === "app" ? "round-rectangle" : "ellipse";
  if (badges.length) data.badgeImage = badgeImage(badges, shape);
  else delete data.badgeImage;
  return { group: "nodes", data };
}

/** Edge data plus `label`, `health`, `rate`, `percentErr`, `hasTraffic` (for style and animation). */
export function edgeElement(e: EdgeData, ro: RenderOptions): ElementDef {
  const n = edgeNumbers(e);
  return {
    group: "edges",
    data: {
      ...e,
      label: edgeLabel(e, ro.edgeLabels),
      health: e.healthStatus ?? "NA",
      protocol: n.protocol,
      rate: n.rate,
      percentErr: n.percentErr,
      hasTraffic: n.rate > 0,
    },
  };
}

export function buildElements(g: GraphResponse, ro: RenderOptions): ElementDef[] {
  const out: ElementDef[] = [];
  const ids = new Set<string>();
  for (const { data } of g.elements.nodes) {
    out.push(nodeElement(data, g.namespace, ro));
    ids.add(data.id);
  }
  for (const el of out) {
    // a member whose box is missing would make Cytoscape throw: draw it without the box
    if (el.data.parent && !ids.has(el.data.parent as string)) delete el.data.parent;
  }
  for (const { data } of g.elements.edges) {
    if (ids.has(data.source) && ids.has(data.target)) out.push(edgeElement(data, ro));
  }
  return out;
}

export interface CurrentElement { group: "nodes" | "edges"; sig: string; parent?: string; source?: string; target?: string }

export interface ElementDiff {
  add: ElementDef[];
  remove: string[];
  update: ElementDef[];
  /** nodes whose parent box changed (moved in place) */
  move: { id: string; parent: string | null }[];
  relayout: boolean;
}

export function signature(data: Record<string, unknown>): string {
  return JSON.stringify(data);
}

/**
 * What to do to turn the drawn elements (`current`, by id) into `next`. New edges alone do not trigger
 * a layout; new, removed or re-parented nodes do.
 */
export function diffElements(current: ReadonlyMap<string, CurrentElement>, next: readonly ElementDef[]): ElementDiff {
  const d: ElementDiff = { add: [], remove: [], update: [], move: [], relayout: false };
  const seen = new Set<string>();
  for (const el of next) {
    const id = el.data.id;
    seen.add(id);
    const cur = current.get(id);
    if (!cur || cur.group !== el.group
        || (el.group === "edges" && (cur.source !== el.data.source || cur.target !== el.data.target))) {
      if (cur) d.remove.push(id);
      d.add.push(el);
      if (el.group === "nodes") d.relayout = true;
      continue;
    }
    if (el.group === "nodes" && (cur.parent ?? null) !== ((el.data.parent as string | undefined) ?? null)) {
      d.move.push({ id, parent: (el.data.parent as string | undefined) ?? null });
      d.relayout = true;
    }
    if (cur.sig !== signature(el.data)) d.update.push(el);
  }
  for (const [id, cur] of current) {
    if (!seen.has(id)) {
      d.remove.push(id);
      if (cur.group === "nodes") d.relayout = true;
    }
  }
  return d;
}
