// Owns the Cytoscape instance of the graph page. Created once per page visit; every refresh is applied
// in place (one cy.batch: add / remove / update data), and the dagre layout runs only when the set of
// nodes changes, so nothing moves while the user reads the graph.
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { TrafficAnimation } from "./animation";
import { buildElements, diffElements, signature, type CurrentElement, type ElementDef, type RenderOptions } from "./elements";
import { compileFind } from "./find";
import { graphStyle } from "./style";
import type { GraphResponse } from "./types";

let registered = false;
function register() {
  if (!registered) {
    cytoscape.use(dagre);
    registered = true;
  }
}

export interface Selection { kind: "node" | "edge"; id: string }

export interface GraphSnapshot {
  nodes: { id: string; label: string; nodeType: string; app?: string; version?: string; workload?: string;
    service?: string; health: string; parent?: string; isRoot: boolean; badges: string[]; x: number; y: number;
    /** Where the node is drawn, in pixels from the graph container's top left (for clicks in tests). */
    renderedX: number; renderedY: number; hidden: boolean; highlighted: boolean }[];
  edges: { id: string; source: string; target: string; label: string; health: string; protocol: string;
    rate: number; percentReq?: number; percentErr: number; responseTime?: number }[];
}

const IMMUTABLE = new Set(["id", "parent", "source", "target"]);

export class GraphController {
  readonly cy: cytoscape.Core;
  private last?: GraphResponse;
  private ro: RenderOptions;
  private animation: TrafficAnimation;
  private find = "";
  private hide = "";
  private updates = 0;

  constructor(private container: HTMLElement, overlay: HTMLCanvasElement, ro: RenderOptions,
              private onSelect: (s: Selection | null) => void) {
    register();
    this.ro = ro;
    this.cy = cytoscape({
      container,
      style: graphStyle,
      elements: [],
      minZoom: 0.05,
      maxZoom: 4,
      boxSelectionEnabled: false,
      selectionType: "single",
    });
    this.animation = new TrafficAnimation(this.cy, overlay);
    this.cy.on("tap", "node, edge", (evt) => {
      const el = evt.target as cytoscape.SingularElementArgument;
      this.onSelect({ kind: el.isNode() ? "node" : "edge", id: el.id() });
    });
    this.cy.on("tap", (evt) => {
      if (evt.target === this.cy) this.onSelect(null);
    });
    container.setAttribute("data-updated", "0");
  }

  destroy(): void {
    this.animation.stop();
    this.cy.destroy();
  }

  /** Apply a fresh graph; returns whether a new layout ran. */
  update(g: GraphResponse): boolean {
    const sameView = !this.last || (this.last.namespace === g.namespace && this.last.graphType === g.graphType);
    this.last = g;
    const relayout = this.apply(buildElements(g, this.ro), !sameView);
    this.updates += 1;
    this.container.setAttribute("data-updated", String(this.updates));
    return relayout;
  }

  /** New label modes or badge setting: recompute the drawn data in place (no layout). */
  setRenderOptions(ro: RenderOptions): void {
    this.ro = ro;
    if (this.last) this.apply(buildElements(this.last, ro), false);
  }

  /** Clear the graph (another namespace is being loaded). */
  clear(): void {
    this.last = undefined;
    this.cy.elements().remove();
  }

  setAnimation(on: boolean): void {
    if (on) this.animation.start();
    else this.animation.stop();
  }

  /** Set Find / Hide expressions; returns an error message per field, if any. */
  setFindHide(find: string, hide: string): { find?: string; hide?: string } {
    const hideChanged = hide !== this.hide;
    this.find = find;
    this.hide = hide;
    const errors = this.applyFindHide();
    // hiding compresses the graph like Kiali's: lay the visible part out again
    if (hideChanged && this.cy.nodes().nonempty()) this.layout();
    return errors;
  }

  select(sel: Selection | null): void {
    this.cy.batch(() => {
      this.cy.elements(":selected").unselect();
      if (sel) this.cy.getElementById(sel.id).select();
    });
  }

  /** Pan (animated) so the element is not hidden under a panel `rightInset` pixels wide on the right. */
  reveal(id: string, rightInset: number): void {
    const el = this.cy.getElementById(id);
    if (el.empty() || !el.visible()) return;
    const bb = el.renderedBoundingBox({});
    const visibleRight = this.container.clientWidth - rightInset - 24;
    if (bb.x2 <= visibleRight || bb.w > visibleRight) return;
    this.cy.stop(true);
    this.cy.animate({ panBy: { x: -(bb.x2 - visibleRight), y: 0 } }, { duration: 250 });
  }

  fit(): void {
    const visible = this.cy.elements(":visible");
    if (!visible.length) return;
    this.cy.fit(visible, 40);
    if (this.cy.zoom() > 1.4) {
      this.cy.zoom(1.4);
      this.cy.center(visible);
    }
  }

  zoomBy(factor: number): void {
    const w = this.container.clientWidth / 2;
    const h = this.container.clientHeight / 2;
    this.cy.zoom({ level: this.cy.zoom() * factor, renderedPosition: { x: w, y: h } });
  }

  layout(): void {
    const layout = this.cy.elements(":visible").layout({
      name: "dagre",
      rankDir: "LR",
      ranker: "network-simplex",
      nodeSep: 30,
      edgeSep: 20,
      rankSep: 70,
      nodeDimensionsIncludeLabels: true,
      fit: false,
      animate: false,
      padding: 30,
    } as cytoscape.LayoutOptions);
    layout.run();
    this.fit();
  }

  snapshot(): GraphSnapshot {
    const nodes: GraphSnapshot["nodes"] = [];
    const edges: GraphSnapshot["edges"] = [];
    this.cy.nodes().forEach((n) => {
      const d = n.data();
      nodes.push({
        id: d.id, label: d.label ?? "", nodeType: d.nodeType, app: d.app, version: d.version, workload: d.workload,
        service: d.service, health: d.health ?? "NA", parent: d.parent, isRoot: !!d.isRoot,
        badges: d.badges ? String(d.badges).split(" ") : [],
        x: Math.round(n.position("x")), y: Math.round(n.position("y")),
        renderedX: Math.round(n.renderedPosition().x), renderedY: Math.round(n.renderedPosition().y),
        hidden: n.hasClass("find-hidden"), highlighted: n.hasClass("find-hit"),
      });
    });
    this.cy.edges().forEach((e) => {
      const d = e.data();
      const rates = d.traffic?.rates ?? {};
      edges.push({
        id: d.id, source: d.source, target: d.target, label: d.label ?? "", health: d.health ?? "NA",
        protocol: d.protocol, rate: d.rate ?? 0, percentReq: rates[`${d.protocol}PercentReq`],
        percentErr: d.percentErr ?? 0, responseTime: d.responseTime,
      });
    });
    return { nodes, edges };
  }

  private current(): Map<string, CurrentElement> {
    const m = new Map<string, CurrentElement>();
    this.cy.elements().forEach((el) => {
      const d = el.data();
      m.set(el.id(), {
        group: el.isNode() ? "nodes" : "edges",
        sig: el.scratch("_sig") ?? "",
        parent: el.isNode() ? (d.parent ?? undefined) : undefined,
        source: d.source,
        target: d.target,
      });
    });
    return m;
  }

  private apply(next: ElementDef[], forceLayout: boolean): boolean {
    const diff = diffElements(this.current(), next);
    const cy = this.cy;
    cy.batch(() => {
      // parents (boxes) before their members, nodes before edges
      const adds = [...diff.add].sort((a, b) => rank(a) - rank(b));
      const removeIds = new Set(diff.remove);
      // an element replaced by one of the same id: remove first
      for (const id of diff.remove) {
        const el = cy.getElementById(id);
        if (el.nonempty() && adds.some((a) => a.data.id === id)) {
          el.remove();
          removeIds.delete(id);
        }
      }
      for (const a of adds.filter((x) => x.group === "nodes")) {
        cy.add({ group: "nodes", data: a.data }).scratch("_sig", signature(a.data));
      }
      for (const m of diff.move) cy.getElementById(m.id).move({ parent: m.parent });
      for (const id of removeIds) {
        const el = cy.getElementById(id);
        if (el.empty()) continue;
        if (el.isNode()) el.children().move({ parent: null }); // orphans are re-parented or removed on their own
        el.remove();
      }
      for (const a of adds.filter((x) => x.group === "edges")) {
        cy.add({ group: "edges", data: a.data }).scratch("_sig", signature(a.data));
      }
      for (const u of diff.update) {
        const el = cy.getElementById(u.data.id);
        if (el.empty()) continue;
        const old = el.data();
        const patch: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(u.data)) if (!IMMUTABLE.has(k)) patch[k] = v;
        for (const k of Object.keys(old)) if (!(k in u.data) && !IMMUTABLE.has(k)) el.removeData(k);
        el.data(patch);
        el.scratch("_sig", signature(u.data));
      }
    });
    this.applyFindHide();
    const relayout = diff.relayout || forceLayout;
    if (relayout && cy.nodes().length) this.layout();
    return relayout;
  }

  private applyFindHide(): { find?: string; hide?: string } {
    const errors: { find?: string; hide?: string } = {};
    const compile = (expr: string, key: "find" | "hide") => {
      try {
        return compileFind(expr);
      } catch (e) {
        errors[key] = (e as Error).message;
        return null;
      }
    };
    const f = compile(this.find, "find");
    const h = compile(this.hide, "hide");
    const cy = this.cy;
    cy.batch(() => {
      cy.elements().removeClass("find-hit find-hidden");
      if (h) {
        const pool = cy.elements(h.target === "node" ? 'node[nodeType != "box"]' : "edge");
        pool.filter((el: cytoscape.SingularElementArgument) => h.test(el.data())).addClass("find-hidden");
        // a box whose members are all hidden goes too
        cy.nodes('[nodeType = "box"]').forEach((b) => {
          const kids = b.children();
          if (kids.nonempty() && kids.filter(".find-hidden").length === kids.length) b.addClass("find-hidden");
        });
      }
      if (f) {
        const pool = cy.elements(f.target === "node" ? 'node[nodeType != "box"]' : "edge");
        pool.filter((el: cytoscape.SingularElementArgument) => f.test(el.data())).addClass("find-hit");
      }
    });
    return errors;
  }
}

function rank(e: ElementDef): number {
  if (e.group === "edges") return 2;
  return e.data.nodeType === "box" ? 0 : 1;
}
