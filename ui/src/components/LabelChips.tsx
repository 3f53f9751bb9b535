// Kubernetes labels as small chips ("app=reviews"); `only` limits them to some keys, in that order.
import "./lists.css";
export default function LabelChips({ labels, only }: { labels?: Record<string, string> | null; only?: string[] }) {
  const entries = Object.entries(labels ?? {});
  const shown = only ? only.filter((k) => labels && k in labels).map((k) => [k, labels![k]] as const) : entries;
  if (!shown.length) return <span className="muted">—</span>;
  return (
    <span className="chips">
      {shown.map(([k, v]) => <span key={k} className="chip" title={`${k}=${v}`}>{k}={v}</span>)}
    </span>
  );
}
