import { createContext, useCallback, useContext, useState, type ReactNode } from "react";

// Notifications in the top right corner, like Kiali's: errors stay until dismissed, the rest fade.
export type ToastKind = "danger" | "success" | "info" | "warning";
interface Toast { id: number; kind: ToastKind; title: string; message?: string }

const Ctx = createContext<(kind: ToastKind, title: string, message?: string) => void>(() => {});
let nextId = 1;

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const dismiss = useCallback((id: number) => setToasts((ts) => ts.filter((t) => t.id !== id)), []);
  const push = useCallback((kind: ToastKind, title: string, message?: string) => {
    const id = nextId++;
    setToasts((ts) => [...ts, { id, kind, title, message }]);
    if (kind !== "danger") setTimeout(() => dismiss(id), 6000);
  }, [dismiss]);
  return (
    <Ctx.Provider value={push}>
      {children}
      <div className="toasts">
        {toasts.map((t) => (
          <div key={t.id} className={`toast toast-${t.kind}`} role="alert" data-testid="toast" data-kind={t.kind}>
            <button className="toast-close" aria-label="Close" onClick={() => dismiss(t.id)}>×</button>
            <strong>{t.title}</strong>
            {t.message && <div className="toast-message">{t.message}</div>}
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}

export const useToast = () => useContext(Ctx);
