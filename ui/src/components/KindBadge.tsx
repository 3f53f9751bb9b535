// Kiali's round type badges (VS, DR, GW, SE, ...) next to Istio object names.
const ABBR: Record<string, string> = {
  VirtualService: "VS", DestinationRule: "DR", Gateway: "G", ServiceEntry: "SE", Sidecar: "S",
  PeerAuthentication: "PA", AuthorizationPolicy: "AP", RequestAuthentication: "RA", EnvoyFilter: "EF",
  WorkloadEntry: "WE", WorkloadGroup: "WG", Telemetry: "T", WasmPlugin: "WP",
  Service: "S", Workload: "W", App: "A", Deployment: "W", Namespace: "NS", Pod: "P",
};

export default function KindBadge({ kind, className = "" }: { kind: string; className?: string }) {
  const abbr = ABBR[kind] ?? (kind.replace(/[^A-Z]/g, "").slice(0, 2) || "?");
  return <span className={`kind-badge kind-${kind} ${className}`} title={kind}>{abbr}</span>;
}
