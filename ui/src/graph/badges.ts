// Node badges drawn as one inline SVG (a data: URI, nothing fetched) that Cytoscape paints as the node's
// background image: small dark discs with a white glyph each, arranged to fit inside the node's shape.
import type { BadgeKind } from "./format";

// Glyphs on a 16×16 grid, white strokes / fills on the disc.
const GLYPHS: Record<BadgeKind, string> = {
  // traffic source: arrow into a bar
  root: '<path d="M3 8h7M7.5 4.8 10.8 8 7.5 11.2" fill="none" stroke="#fff" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/><path d="M13 3.5v9" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/>',
  // virtual service / request routing: a branch
  vs: '<g fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round"><path d="M5 4v8M5 9c0-3 6-2 6-5"/></g><circle cx="5" cy="12" r="1.6" fill="#fff"/><circle cx="5" cy="4" r="1.6" fill="#fff"/><circle cx="11" cy="4" r="1.6" fill="#fff"/>',
  // traffic shifting: one line split in two arrows
  trafficShifting: '<g fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"><path d="M2.5 8H6l5-4h2.5M6 8l5 4h2.5M11.5 2.5 13.5 4l-2 1.5M11.5 10.5l2 1.5-2 1.5"/></g>',
  // fault injection: a "ban" sign
  faultInjection: '<g fill="none" stroke="#fff" stroke-width="1.8"><circle cx="8" cy="8" r="5"/><path d="M4.5 11.5l7-7"/></g>',
  // mirroring: two overlapping sheets
  mirroring: '<g fill="none" stroke="#fff" stroke-width="1.5"><rect x="2.8" y="2.8" width="7" height="7" rx="1"/><rect x="6.2" y="6.2" width="7" height="7" rx="1" fill="#fff"/></g>',
  // circuit breaker: a bolt
  cb: '<path d="M9.5 1.8 4 9h3.5L6.5 14.2 12 7H8.5z" fill="#fff"/>',
  // request timeout: a clock
  timeout: '<g fill="none" stroke="#fff" stroke-width="1.6" stroke-linecap="round"><circle cx="8" cy="8" r="5.4"/><path d="M8 5v3.2l2.2 1.6"/></g>',
  // rollout: rising steps
  rollout: '<path d="M2.5 13h3.5v-3.5h3.5V6h4" fill="none" stroke="#fff" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round"/><path d="M11.5 3.8 13.6 6l-2.1 2.2" fill="none" stroke="#fff" stroke-width="1.5" stroke-linecap="round" stroke-linejoin="round"/>',
};

export const BADGE_COLORS: Record<BadgeKind, string> = {
  root: "#0066cc",
  vs: "#3c3f42",
  trafficShifting: "#3c3f42",
  faultInjection: "#a30000",
  mirroring: "#3c3f42",
  cb: "#8f4700",
  timeout: "#3c3f42",
  rollout: "#5752d1",
};

/** One badge as a standalone SVG (for the legend and the side panel). */
export function badgeSvg(kind: BadgeKind, size = 16): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 16 16">`
    + `<circle cx="8" cy="8" r="8" fill="${BADGE_COLORS[kind]}"/>${GLYPHS[kind]}</svg>`;
}

export function svgDataUri(svg: string): string {
  return `data:image/svg+xml;utf8,${encodeURIComponent(svg)}`;
}

export type NodeShape = "round-rectangle" | "ellipse" | "triangle";

/** The node size the style sheet uses; badges are laid out on this canvas. */
export const NODE_SIZE = 44;

/**
 * Badge positions (top-left corners and the icon size) inside a NODE_SIZE square for `n` badges,
 * rows centred; a triangle fills from its wide bottom up.
 */
export function badgeLayout(n: number, shape: NodeShape): { x: number; y: number; size: number }[] {
  if (n <= 0) return [];
  const S = NODE_SIZE;
  const out: { x: number; y: number; size: number }[] = [];
  if (shape === "triangle") {
    // rows from the wide bottom up, fewer per row towards the apex
    const size = n <= 3 ? 12 : 10;
    const caps = n <= 3 ? [2, 1] : [3, 2, 2];
    let left = n;
    let y = S - size - 4;
    for (let r = 0; left > 0; r++) {
      const k = Math.min(caps[Math.min(r, caps.length - 1)], left);
      const x0 = (S - k * (size + 1) + 1) / 2;
      for (let i = 0; i < k; i++) out.push({ x: x0 + i * (size + 1), y, size });
      left -= k;
      y -= size + 1;
    }
    return out;
  }
  const cols = n === 1 ? 1 : n <= 4 ? 2 : 3;
  const size = n === 1 ? 18 : n <= 4 ? 14 : 11;
  const gap = 2;
  const rows = Math.ceil(n / cols);
  const y0 = (S - rows * size - (rows - 1) * gap) / 2;
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / cols);
    const inRow = Math.min(cols, n - r * cols);
    const x0 = (S - inRow * size - (inRow - 1) * gap) / 2;
    out.push({ x: x0 + (i % cols) * (size + gap), y: y0 + r * (size + gap), size });
  }
  return out;
}

const cache = new Map<string, string>();

/** The node background for these badges (a data: URI; cached per combination and shape). */
export function badgeImage(badges: readonly BadgeKind[], shape: NodeShape): string {
  const key = `${shape}:${badges.join(",")}`;
  let uri = cache.get(key);
  if (!uri) {
    const pos = badgeLayout(badges.length, shape);
    const parts = badges.map((b, i) => {
      const p = pos[i];
      const s = p.size / 16;
      return `<g transform="translate(${p.x.toFixed(2)} ${p.y.toFixed(2)}) scale(${s.toFixed(4)})">`
        + `<circle cx="8" cy="8" r="8" fill="${BADGE_COLORS[b]}"/>${GLYPHS[b]}</g>`;
    });
    uri = svgDataUri(`<svg xmlns="http://www.w3.org/2000/svg" width="${NODE_SIZE}" height="${NODE_SIZE}" viewBox="0 0 ${NODE_SIZE} ${NODE_SIZE}">${parts.join("")}</svg>`);
    cache.set(key, uri);
  }
  return uri;
}
