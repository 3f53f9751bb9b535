import { useState, useSyncExternalStore, type FormEvent } from "react";
import { isLoginRequired, logIn, subscribeLogin } from "../auth";

// Shown over the page when the daemon answers 401 (the session ended). It cannot be dismissed: nothing works
// without a login, and the page underneath keeps its state for when it does.
export function LoginDialog() {
  const required = useSyncExternalStore(subscribeLogin, isLoginRequired);
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!required) return null;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const problem = await logIn(token);
    setBusy(false);
    setError(problem);
    if (!problem) setToken("");
  };
  return (
    <div className="modal-backdrop">
      <div className="modal" role="dialog" aria-modal="true" aria-label="Log in" data-testid="login-dialog"
        style={{ width: 520 }}>
        <div className="modal-header"><h2>Log in to the console</h2></div>
        <form onSubmit={submit}>
          <div className="modal-body">
            <p>Your session has ended. Run <code>sluice console</code> and open the address it prints, or paste
              its token (or the whole address, or your kubeconfig&apos;s token) here.</p>
            {error && <p className="login-error" role="alert">{error}</p>}
            <input type="password" autoComplete="off" autoFocus aria-label="Token" data-testid="login-token"
              style={{ width: "100%", boxSizing: "border-box" }} value={token}
              onChange={(e) => setToken(e.target.value)} />
          </div>
          <div className="modal-footer">
            <button type="submit" className="primary" data-testid="login-submit" disabled={busy || !token.trim()}>
              {busy ? "Logging in…" : "Log in"}
            </button>
          </div>
        </form>
      </div>
    </div>
  );
}
