import StatusIcon from "./StatusIcon";

export interface ValidationCheck { code?: string; severity: string; message: string; path?: string }
export interface Validation { status: string; valid?: boolean; errors?: number; warnings?: number; checks?: ValidationCheck[] }

/** The "Configuration" cell of Kiali's Istio Config list: green check Valid, orange warning, red error. */
export default function ValidationIcon({ validation, label = true }: { validation?: Validation | null; label?: boolean }) {
  if (!validation) return <span className="validation validation-none" title="Not validated">N/A</span>;
  const checks = validation.checks ?? [];
  const errors = validation.errors ?? checks.filter((c) => c.severity === "error").length;
  const warnings = validation.warnings ?? checks.filter((c) => c.severity === "warning").length;
  const status = validation.status || (errors ? "NotValid" : warnings ? "Warning" : "Valid");
  const kind = status === "NotValid" || errors > 0 ? "error" : status === "Warning" || warnings > 0 ? "warning" : "ok";
  const text = kind === "error" ? "Not Valid" : kind === "warning" ? "Warning" : "Valid";
  const tooltip = checks.length
    ? checks.map((c) => `${c.severity === "error" ? "Error" : c.severity === "warning" ? "Warning" : "Info"}${c.code ? ` ${c.code}` : ""}: ${c.message}`).join("\n")
    : text;
  const count = kind === "error" ? errors : kind === "warning" ? warnings : 0;
  return (
    <span className={`validation validation-${kind}`} title={tooltip} data-validation={status}>
      <StatusIcon kind={kind} />
      {label && <span>{text}{count > 1 ? ` (${count})` : ""}</span>}
    </span>
  );
}
