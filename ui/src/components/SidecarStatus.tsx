import StatusIcon from "./StatusIcon";

// Kiali's "Missing Sidecar" marker (list Details column); a quiet check when the sidecar is there.
export default function SidecarStatus({ present }: { present: boolean | undefined }) {
  if (present) {
    return <span className="lp-sidecar" title="Istio sidecar present"><StatusIcon kind="ok" size={13} /> Sidecar</span>;
  }
  return <span className="lp-sidecar lp-sidecar-missing" data-testid="missing-sidecar"><StatusIcon kind="warning" size={13} /> Missing sidecar</span>;
}
