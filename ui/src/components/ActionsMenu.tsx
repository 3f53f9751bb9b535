import { useEffect, useRef, useState } from "react";

export interface MenuAction { id: string; label: string; onClick: () => void; danger?: boolean; disabled?: boolean; title?: string; separatorBefore?: boolean }

// Kiali's "Actions" dropdown of the detail pages.
export default function ActionsMenu({ actions, label = "Actions" }: { actions: MenuAction[]; label?: string }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const close = (e: MouseEvent) => { if (!ref.current?.contains(e.target as Node)) setOpen(false); };
    const esc = (e: KeyboardEvent) => { if (e.key === "Escape") setOpen(false); };
    document.addEventListener("mousedown", close);
    document.addEventListener("keydown", esc);
    return () => { document.removeEventListener("mousedown", close); document.removeEventListener("keydown", esc); };
  }, [open]);
  return (
    <div className="dropdown" ref={ref}>
      <button data-testid="actions" aria-haspopup="menu" aria-expanded={open} onClick={() => setOpen((o) => !o)}>{label} ▾</button>
      {open && (
        <div className="dropdown-menu" role="menu">
          {actions.map((a) => (
            <div key={a.id}>
              {a.separatorBefore && <div className="dropdown-sep" />}
              <button role="menuitem" className={`dropdown-item${a.danger ? " danger-text" : ""}`} data-testid={`action-${a.id}`}
                disabled={a.disabled} title={a.title} onClick={() => { setOpen(false); a.onClick(); }}>{a.label}</button>
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
