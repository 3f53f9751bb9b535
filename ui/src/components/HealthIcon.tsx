import type { Health } from "../api";

const TEXT: Record<Health, string> = { Healthy: "Healthy", Degraded: "Degraded", Failure: "Failure", NA: "No health information" };

export default function HealthIcon({ status, label = false }: { status: Health | string; label?: boolean }) {
  const s = (status in TEXT ? status : "NA") as Health;
  return (
    <span className="health-cell" data-health={s} title={TEXT[s]}>
      <span className={`health health-${s}`} aria-hidden="true" />
      {label && TEXT[s]}
    </span>
  );
}
