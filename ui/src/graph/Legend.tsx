import { badgeSvg, svgDataUri } from "./badges";
import { BADGE_TITLES, type BadgeKind } from "./format";
import { COLORS } from "./style";

// The graph legend: node shapes, health colours, edge colours, badges.
function Shape({ kind, color = COLORS.nodeBorder, fill = "#fff" }: { kind: string; color?: string; fill?: string }) {
  const common = { fill, stroke: color, strokeWidth: 2 };
  return (
    <svg width="22" height="22" viewBox="0 0 22 22" aria-hidden="true">
      {kind === "app" && <rect x="2" y="2" width="18" height="18" rx="5" {...common} />}
      {kind === "workload" && <circle cx="11" cy="11" r="9" {...common} />}
      {kind === "service" && <path d="M11 2 20 20H2z" {...common} strokeLinejoin="round" />}
      {kind === "unknown" && <circle cx="11" cy="11" r="9" {...common} fill={COLORS.unknown} />}
      {kind === "box" && <rect x="1.5" y="4" width="19" height="14" rx="3" fill={COLORS.box} stroke={COLORS.boxBorder} strokeWidth={1} />}
    </svg>
  );
}

function Line({ color, dashed = false }: { color: string; dashed?: boolean }) {
  return (
    <svg width="30" height="12" viewBox="0 0 30 12" aria-hidden="true">
      <path d="M1 6h24" stroke={color} strokeWidth="2" strokeDasharray={dashed ? "4 3" : undefined} />
      <path d="M22 2l6 4-6 4" fill="none" stroke={color} strokeWidth="2" />
    </svg>
  );
}

const BADGES: BadgeKind[] = ["root", "vs", "trafficShifting", "faultInjection", "mirroring", "cb", "timeout", "rollout"];

export default function Legend({ onClose }: { onClose: () => void }) {
  return (
    <div className="graph-legend" data-testid="graph-legend">
      <button type="button" className="sp-close" aria-label="Close legend" onClick={onClose}>×</button>
      <h3>Node shapes</h3>
      <ul>
        <li><Shape kind="app" /> App (versioned app)</li>
        <li><Shape kind="workload" /> Workload</li>
        <li><Shape kind="service" /> Service</li>
        <li><Shape kind="unknown" /> Unknown</li>
        <li><Shape kind="box" /> Application box</li>
      </ul>
      <h3>Node health</h3>
      <ul>
        <li><Shape kind="workload" /> Healthy</li>
        <li><Shape kind="workload" color={COLORS.degraded} /> Degraded</li>
        <li><Shape kind="workload" color={COLORS.failure} /> Failure</li>
      </ul>
      <h3>Edges</h3>
      <ul>
        <li><Line color={COLORS.edge} /> Healthy</li>
        <li><Line color={COLORS.edgeDegraded} /> Degraded</li>
        <li><Line color={COLORS.edgeFailure} /> Failure</li>
        <li><Line color={COLORS.edgeTcp} /> TCP</li>
        <li><Line color={COLORS.edgeIdle} dashed /> Idle</li>
      </ul>
      <h3>Badges</h3>
      <ul>
        {BADGES.map((b) => (
          <li key={b}><img src={svgDataUri(badgeSvg(b, 16))} alt="" width={16} height={16} /> {BADGE_TITLES[b]}</li>
        ))}
      </ul>
    </div>
  );
}
