// Kubernetes labels as Kiali shows them: small "key=value" chips.
export default function Labels({ labels, empty = "No labels" }: { labels?: Record<string, string> | null; empty?: string }) {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return <span className="muted">{empty}</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) => <span key={k} className="label-chip" title={`${k}=${v}`}><span className="label-key">{k}</span>{v !== "" && <>={v}</>}</span>)}
    </span>
  );
}
