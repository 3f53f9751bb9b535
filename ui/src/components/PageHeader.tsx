import type { ReactNode } from "react";
import { Link } from "react-router-dom";
import KindBadge from "./KindBadge";

// Breadcrumb + title line of the detail pages (Kiali: "Namespace: tutorial › Istio Config › reviews").
export default function PageHeader({ crumbs, kind, title, actions, children }: {
  crumbs: { label: string; to?: string }[]; kind?: string; title: ReactNode; actions?: ReactNode; children?: ReactNode;
}) {
  return (
    <div className="page-header">
      <nav className="breadcrumb" aria-label="Breadcrumb">
        {crumbs.map((c, i) => (
          <span key={i}>
            {c.to ? <Link to={c.to}>{c.label}</Link> : <span>{c.label}</span>}
            {i < crumbs.length - 1 && <span className="breadcrumb-sep">›</span>}
          </span>
        ))}
      </nav>
      <div className="page-title">
        <h1>{kind && <KindBadge kind={kind} />}{title}</h1>
        {children}
        {actions && <div className="page-actions">{actions}</div>}
      </div>
    </div>
  );
}
