// Traffic animation on a canvas laid over the graph: dots travel along every edge with traffic, one
// every `dotDelayMs(rate)` (40 ms .. 5 s, so denser means busier), a red diamond for the share of
// requests that failed. One requestAnimationFrame loop draws everything in two canvas paths; the edge
// geometry is cached in model coordinates and re-read only after Cytoscape re-renders a change (pan and
// zoom are applied as a canvas transform). Nothing touches React; the loop stops, and the canvas is
// cleared, when the animation is turned off.
import type cytoscape from "cytoscape";
import { dotDelayMs } from "./format";
import { COLORS } from "./style";

interface Dot { born: number; travel: number; error: boolean }
interface EdgeGeom { sx: number; sy: number; cx: number; cy: number; tx: number; ty: number; travel: number; delay: number; errShare: number }
interface EdgeState { next: number; dots: Dot[] }

const CHANGE_EVENTS = "add remove data position style layoutstop";

export class TrafficAnimation {
  private raf = 0;
  private states = new Map<string, EdgeState>();
  private geom = new Map<string, EdgeGeom>();
  private dirty = true;
  private running = false;
  private resize?: ResizeObserver;
  private onChange = () => {
    this.dirty = true;
  };
  private onRender = () => {
    if (this.dirty) this.readGeometry();
  };

  constructor(private cy: cytoscape.Core, private canvas: HTMLCanvasElement) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.canvas.style.display = "block";
    this.fitCanvas();
    this.resize = new ResizeObserver(() => this.fitCanvas());
    this.resize.observe(this.canvas.parentElement ?? this.canvas);
    this.cy.on(CHANGE_EVENTS, this.onChange);
    this.cy.on("render", this.onRender);
    this.readGeometry();
    const loop = (t: number) => {
      if (!this.running) return;
      this.frame(t);
      this.raf = requestAnimationFrame(loop);
    };
    this.raf = requestAnimationFrame(loop);
  }

  stop(): void {
    if (this.running) {
      this.cy.off(CHANGE_EVENTS, this.onChange);
      this.cy.off("render", this.onRender);
    }
    this.running = false;
    cancelAnimationFrame(this.raf);
    this.resize?.disconnect();
    this.states.clear();
    this.geom.clear();
    const ctx = this.canvas.getContext("2d");
    ctx?.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.canvas.style.display = "none";
  }

  private fitCanvas(): void {
    const parent = this.canvas.parentElement;
    if (!parent) return;
    const dpr = window.devicePixelRatio || 1;
    const w = parent.clientWidth;
    const h = parent.clientHeight;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
  }

  private readGeometry(): void {
    this.dirty = false;
    this.geom.clear();
    this.cy.edges().forEach((e) => {
      const rate = Number(e.data("rate")) || 0;
      if (rate <= 0 || !e.visible()) return;
      const s = e.sourceEndpoint();
      const t = e.targetEndpoint();
      const m = e.midpoint();
      if (!s || !t || !m || !Number.isFinite(s.x) || !Number.isFinite(t.x) || !Number.isFinite(m.x)) return;
      const len = Math.hypot(t.x - s.x, t.y - s.y);
      const rt = Number(e.data("responseTime")) || 0;
      this.geom.set(e.id(), {
        sx: s.x, sy: s.y, tx: t.x, ty: t.y,
        // control point of the quadratic curve through the midpoint (a straight edge: the midpoint itself)
        cx: 2 * m.x - (s.x + t.x) / 2, cy: 2 * m.y - (s.y + t.y) / 2,
        // slower responses travel slower: 0.6 s .. 3 s for the length of the edge
        travel: Math.min(3000, Math.max(600, len * 6 + rt * 2)),
        delay: dotDelayMs(rate),
        errShare: (Number(e.data("percentErr")) || 0) / 100,
      });
    });
  }

  private frame(now: number): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    const zoom = this.cy.zoom();
    const pan = this.cy.pan();
    ctx.setTransform(dpr * zoom, 0, 0, dpr * zoom, dpr * pan.x, dpr * pan.y);
    const r = Math.max(2, 3 / Math.sqrt(zoom));
    const ok = new Path2D();
    const bad = new Path2D();
    for (const [id, g] of this.geom) {
      let st = this.states.get(id);
      if (!st) {
        st = { next: now + Math.random() * Math.min(g.delay, 1000), dots: [] };
        this.states.set(id, st);
      }
      // after a hidden tab, resume without a burst of dots
      if (now - st.next > 2000) st.next = now;
      while (st.next <= now) {
        st.dots.push({ born: st.next, travel: g.travel, error: Math.random() < g.errShare });
        st.next += g.delay;
      }
      let keep = 0;
      for (const d of st.dots) {
        const p = (now - d.born) / d.travel;
        if (p >= 1) continue;
        st.dots[keep++] = d;
        if (p < 0) continue;
        const q = 1 - p;
        const x = q * q * g.sx + 2 * q * p * g.cx + p * p * g.tx;
        const y = q * q * g.sy + 2 * q * p * g.cy + p * p * g.ty;
        if (d.error) {
          const k = r * 1.6;
          bad.moveTo(x, y - k);
          bad.lineTo(x + k, y);
          bad.lineTo(x, y + k);
          bad.lineTo(x - k, y);
          bad.closePath();
        } else {
          ok.moveTo(x + r, y);
          ok.arc(x, y, r, 0, Math.PI * 2);
        }
      }
      st.dots.length = keep;
    }
    for (const id of this.states.keys()) if (!this.geom.has(id)) this.states.delete(id);
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#1f6f2b";
    ctx.lineWidth = 1.2;
    ctx.fill(ok);
    ctx.stroke(ok);
    ctx.fillStyle = COLORS.failure;
    ctx.fill(bad);
  }
}
