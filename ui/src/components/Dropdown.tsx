import { useEffect, useRef, useState, type ReactNode } from "react";
import "./dropdown.css";

// A toolbar button that opens a small panel of settings (checkboxes, radios); closes on a click
// outside or Escape. The panel content stays interactive while open.
export default function Dropdown({ label, children, testId, align = "left" }: {
  label: ReactNode; children: ReactNode; testId?: string; align?: "left" | "right";
}) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("mousedown", onDown);
      document.removeEventListener("keydown", onKey);
    };
  }, [open]);
  return (
    <div className="dropdown" ref={ref}>
      <button type="button" className={open ? "dropdown-toggle open" : "dropdown-toggle"} aria-expanded={open}
              data-testid={testId} onClick={() => setOpen((o) => !o)}>
        {label} <span className="caret" aria-hidden="true">▾</span>
      </button>
      {open && <div className={`dropdown-menu dropdown-${align}`} role="menu">{children}</div>}
    </div>
  );
}
