// Pieces shared by the Istio config detail and create pages around the YAML editor.
import StatusIcon, { severityIcon } from "../components/StatusIcon";
import type { ValidationCheck } from "../components/ValidationIcon";
import type { TextDiagnostic } from "./yamlPaths";

/** The inline error of a rejected save: the server's message verbatim in data-testid="editor-error". */
export function EditorError({ title, message, line, onDismiss, onReveal }: {
  title: string; message: string; line?: number | null; onDismiss: () => void; onReveal?: () => void;
}) {
  return (
    <div className="inline-alert inline-alert-danger editor-error-box" aria-live="polite">
      <StatusIcon kind="error" size={16} />
      <div className="inline-alert-body">
        <div className="inline-alert-title">{title}</div>
        <div className="editor-error-message" data-testid="editor-error">{message}</div>
        {line ? <button className="link-button" onClick={onReveal}>Go to line {line}</button> : null}
      </div>
      <button className="inline-alert-close" aria-label="Dismiss" onClick={onDismiss}>×</button>
    </div>
  );
}

/** "YAML syntax error on line N: ..." under the toolbar while the text does not parse (Save is blocked). */
export function SyntaxErrors({ errors }: { errors: TextDiagnostic[] }) {
  if (errors.length === 0) return null;
  const first = errors[0];
  return (
    <div className="syntax-errors" data-testid="yaml-syntax-error">
      <StatusIcon kind="error" />
      <span>YAML syntax error{errors.length > 1 ? `s (${errors.length})` : ""}: line {first.line}: {first.message}</span>
    </div>
  );
}

/** The validation checks of the saved object, as a list beside the editor. */
export function ChecksList({ checks, stale, onReveal }: { checks: ValidationCheck[]; stale: boolean; onReveal: (path: string | null) => void }) {
  return (
    <div className="checks" data-testid="validation-list">
      {stale && checks.length > 0 && <div className="muted small">These checks are for the saved version.</div>}
      {checks.length === 0 ? (
        <div className="check-row"><StatusIcon kind="ok" /><span>No validation issues.</span></div>
      ) : checks.map((c, i) => (
        <button key={i} className="check-row check-button" data-testid="validation-check" data-severity={c.severity}
          onClick={() => onReveal(c.path || null)} title={c.path ? `Go to ${c.path}` : undefined}>
          <StatusIcon kind={severityIcon(c.severity)} />
          <span>
            {c.code && <strong className="check-code">{c.code}</strong>} {c.message}
            {c.path && <span className="check-path">{c.path}</span>}
          </span>
        </button>
      ))}
    </div>
  );
}
