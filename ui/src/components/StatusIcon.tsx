// Small status icons (PatternFly-like): check-circle, exclamation-triangle, exclamation-circle, info-circle.
export type IconKind = "ok" | "warning" | "error" | "info";

const COLORS: Record<IconKind, string> = { ok: "#3e8635", warning: "#f0ab00", error: "#c9190b", info: "#2b9af3" };

export default function StatusIcon({ kind, size = 14, title }: { kind: IconKind; size?: number; title?: string }) {
  const c = COLORS[kind];
  const common = { width: size, height: size, viewBox: "0 0 16 16", className: `status-icon status-icon-${kind}`, "aria-hidden": title ? undefined : true, role: title ? "img" : undefined } as const;
  return (
    <svg {...common} aria-label={title}>
      {title && <title>{title}</title>}
      {kind === "ok" && (<><circle cx="8" cy="8" r="7.5" fill={c} /><path d="M4.4 8.3l2.4 2.4 4.8-5" stroke="#fff" strokeWidth="1.8" fill="none" strokeLinecap="round" strokeLinejoin="round" /></>)}
      {kind === "warning" && (<><path d="M8 1l7.4 13.2H.6z" fill={c} stroke={c} strokeLinejoin="round" /><rect x="7.1" y="5.3" width="1.8" height="5" rx=".8" fill="#fff" /><circle cx="8" cy="12.2" r="1" fill="#fff" /></>)}
      {kind === "error" && (<><circle cx="8" cy="8" r="7.5" fill={c} /><rect x="7.1" y="3.6" width="1.8" height="6" rx=".8" fill="#fff" /><circle cx="8" cy="11.9" r="1.05" fill="#fff" /></>)}
      {kind === "info" && (<><circle cx="8" cy="8" r="7.5" fill={c} /><rect x="7.1" y="6.8" width="1.8" height="5.4" rx=".8" fill="#fff" /><circle cx="8" cy="4.4" r="1.05" fill="#fff" /></>)}
    </svg>
  );
}

export const severityIcon = (s: string): IconKind => (s === "error" ? "error" : s === "warning" ? "warning" : "info");
