import { useEffect, useRef, type ReactNode } from "react";

// A centred dialog over a dimmed page; Escape or the × closes it.
export function Modal({ title, onClose, children, footer, width = 520, testId }: {
  title: ReactNode; onClose: () => void; children: ReactNode; footer?: ReactNode; width?: number; testId?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => { if (e.key === "Escape") onClose(); };
    document.addEventListener("keydown", onKey);
    ref.current?.focus();
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => { if (e.target === e.currentTarget) onClose(); }}>
      <div className="modal" role="dialog" aria-modal="true" aria-label={typeof title === "string" ? title : undefined}
        data-testid={testId} style={{ width }} ref={ref} tabIndex={-1}>
        <div className="modal-header">
          <h2>{title}</h2>
          <button className="modal-close" aria-label="Close" onClick={onClose}>×</button>
        </div>
        <div className="modal-body">{children}</div>
        {footer && <div className="modal-footer">{footer}</div>}
      </div>
    </div>
  );
}

/** "Are you sure?" with a danger confirm button (data-testid="confirm"). */
export function ConfirmDialog({ title, message, confirmLabel = "Delete", busy = false, onConfirm, onCancel }: {
  title: string; message: ReactNode; confirmLabel?: string; busy?: boolean; onConfirm: () => void; onCancel: () => void;
}) {
  return (
    <Modal title={title} onClose={onCancel} testId="confirm-dialog" width={460}
      footer={<>
        <button className="danger" data-testid="confirm" disabled={busy} onClick={onConfirm}>{busy ? "Working…" : confirmLabel}</button>
        <button onClick={onCancel} data-testid="cancel">Cancel</button>
      </>}>
      {message}
    </Modal>
  );
}
