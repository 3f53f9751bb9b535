import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api, ApiError, enc } from "../api";
import { useToast } from "../components/Toast";
import { ConfirmDialog } from "../components/Modal";
import PageHeader from "../components/PageHeader";
import Labels from "../components/Labels";
import ValidationIcon from "../components/ValidationIcon";
import { age, apiDetailPath, type IstioDetail } from "../components/istio";
import YamlEditor, { type EditorMarker, type YamlEditorHandle } from "../editor/YamlEditor";
import { ChecksList, EditorError, SyntaxErrors } from "../editor/EditorParts";
import { ensureResourceVersion, locateField, serverErrorMarkers, yamlSyntaxErrors } from "../editor/yamlPaths";
import { useUnsavedChangesGuard } from "../editor/useUnsavedChangesGuard";
import "../components/details.css";

interface SaveError { title: string; message: string; markers: EditorMarker[] }

// Kiali's Istio config details: the object's YAML in an editor, its validations beside it, Save / Reload / Delete.
export default function IstioConfigDetailPage() {
  const { ns = "", kind = "", name = "" } = useParams();
  const toast = useToast();
  const navigate = useNavigate();
  const editor = useRef<YamlEditorHandle>(null);
  const [detail, setDetail] = useState<IstioDetail | null>(null);
  const [loadError, setLoadError] = useState<{ code: number; message: string } | null>(null);
  const [text, setText] = useState("");
  const [docKey, setDocKey] = useState(0);
  const [saveError, setSaveError] = useState<SaveError | null>(null);
  const [saving, setSaving] = useState(false);
  const [confirm, setConfirm] = useState<"delete" | "reload" | null>(null);
  const [deleting, setDeleting] = useState(false);

  const load = useCallback(async () => {
    try {
      const d = await api.get<IstioDetail>(apiDetailPath(ns, kind, name));
      setDetail(d);
      setText(d.yaml);
      setDocKey((k) => k + 1);
      setLoadError(null);
      return d;
    } catch (e) {
      const err = e as ApiError;
      setLoadError({ code: err.code, message: err.message });
      return null;
    }
  }, [ns, kind, name]);

  useEffect(() => { setDetail(null); setSaveError(null); void load(); }, [load]);

  const kindName = detail?.kind ?? kind;
  const modified = !!detail && text !== detail.yaml;
  const syntaxErrors = useMemo(() => yamlSyntaxErrors(text), [text]);
  useUnsavedChangesGuard(modified);

  const checks = detail?.validation?.checks ?? [];
  const markers = useMemo<EditorMarker[]>(() => {
    const out: EditorMarker[] = [];
    if (saveError) out.push(...saveError.markers);
    // Kiali draws the validations of the saved object while the text is the saved one.
    if (!modified) {
      for (const c of checks) {
        out.push({ path: c.path || null, message: `${c.code ? `${c.code}: ` : ""}${c.message}`,
          severity: c.severity === "error" ? "error" : c.severity === "warning" ? "warning" : "info", source: "Validation" });
      }
    }
    return out;
  }, [saveError, modified, checks]);

  const save = useCallback(async () => {
    if (!detail || saving) return;
    if (yamlSyntaxErrors(text).length) return;
    setSaving(true);
    const body = ensureResourceVersion(text, detail.resourceVersion ?? (detail.object?.metadata as { resourceVersion?: string })?.resourceVersion);
    try {
      const res = await api.put<IstioDetail>(apiDetailPath(ns, detail.kind, detail.name), body, "application/yaml");
      setSaveError(null);
      toast("success", `Changes applied on ${detail.namespace} / ${detail.kind} / ${detail.name}`);
      if (res?.warnings?.length) toast("warning", `${detail.kind} ${detail.name} saved with warnings`, res.warnings.join("\n"));
      if (res && typeof res.yaml === "string") { setDetail(res); setText(res.yaml); setDocKey((k) => k + 1); }
      await load();
    } catch (e) {
      const err = e as ApiError;
      const title = `Could not update ${detail.kind} ${detail.name}`;
      toast("danger", title, err.message);
      setSaveError({
        title, message: err.message,
        markers: serverErrorMarkers(err.message, err.status).map((m) => ({ ...m, severity: "error" as const, source: "Server" })),
      });
    } finally {
      setSaving(false);
    }
  }, [detail, saving, text, ns, toast, load]);

  // Ctrl/Cmd+S saves.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") { e.preventDefault(); if (modified && !syntaxErrors.length) void save(); }
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [save, modified, syntaxErrors.length]);

  const reload = async () => { setConfirm(null); setSaveError(null); await load(); };

  const remove = async () => {
    if (!detail) return;
    setDeleting(true);
    try {
      await api.del(apiDetailPath(ns, detail.kind, detail.name));
      toast("success", `${detail.kind} ${detail.name} deleted`, `Deleted from namespace ${detail.namespace}`);
      setConfirm(null);
      setDetail(null);
      navigate(`/istio?namespace=${enc(ns)}`);
    } catch (e) {
      toast("danger", `Could not delete ${detail.kind} ${detail.name}`, (e as Error).message);
      setConfirm(null);
    } finally {
      setDeleting(false);
    }
  };

  const crumbs = [
    { label: "Istio Config", to: `/istio?namespace=${enc(ns)}` },
    { label: `Namespace: ${ns}`, to: `/istio?namespace=${enc(ns)}` },
    { label: `${kindName}: ${name}` },
  ];

  if (loadError && !detail) {
    return (
      <div>
        <PageHeader crumbs={crumbs} kind={kindName} title={name} />
        <div className="inline-alert inline-alert-danger" data-testid="load-error">
          {loadError.code === 404 ? `${kindName} ${name} was not found in namespace ${ns}.` : `Could not load ${kindName} ${name}: ${loadError.message}`}
          {" "}<Link to={`/istio?namespace=${enc(ns)}`}>Back to Istio Config</Link>
        </div>
      </div>
    );
  }

  const errorLine = saveError && saveError.markers[0] ? locateField(text, saveError.markers[0].path).line : null;
  const meta = (detail?.object?.metadata ?? {}) as { annotations?: Record<string, string> };
  return (
    <div className="istio-detail-page">
      <PageHeader crumbs={crumbs} kind={kindName} title={name}>
        {detail && <ValidationIcon validation={detail.validation} />}
      </PageHeader>

      {saveError && (
        <EditorError title={saveError.title} message={saveError.message} line={errorLine}
          onDismiss={() => setSaveError(null)} onReveal={() => editor.current?.reveal(saveError.markers[0]?.path ?? null)} />
      )}

      <div className="editor-layout">
        <div className="editor-main">
          <div className="editor-frame">
            {detail ? (
              <YamlEditor ref={editor} doc={detail.yaml} docKey={docKey} onChange={setText} markers={markers} />
            ) : <div className="empty">Loading…</div>}
          </div>
          <SyntaxErrors errors={syntaxErrors} />
          <div className="editor-actions">
            <button className="primary" data-testid="save" disabled={!modified || syntaxErrors.length > 0 || saving} onClick={() => void save()}>
              {saving ? "Saving…" : "Save"}
            </button>
            <button data-testid="reload" disabled={!detail || saving} onClick={() => (modified ? setConfirm("reload") : void reload())}>Reload</button>
            {modified && <button className="link-button" onClick={() => { if (detail) { setText(detail.yaml); setDocKey((k) => k + 1); setSaveError(null); } }}>Discard changes</button>}
            <span className="editor-status muted" data-testid="editor-status">
              {modified ? "Unsaved changes" : detail ? `Saved · resourceVersion ${detail.resourceVersion ?? ""}` : ""}
            </span>
            <button className="danger-outline" data-testid="delete" disabled={!detail || saving} onClick={() => setConfirm("delete")}>Delete</button>
          </div>
        </div>
        <aside className="editor-side">
          <section className="side-section">
            <h3>Validation</h3>
            {detail && <ChecksList checks={checks} stale={modified} onReveal={(p) => editor.current?.reveal(p)} />}
          </section>
          {detail && (
            <section className="side-section">
              <h3>Overview</h3>
              <dl className="props">
                <dt>Type</dt><dd>{detail.kind}</dd>
                <dt>API version</dt><dd>{detail.apiVersion}</dd>
                <dt>Namespace</dt><dd>{detail.namespace}</dd>
                <dt>Created</dt><dd title={detail.createdAt}>{detail.createdAt ? `${age(detail.createdAt)} ago` : "–"}</dd>
                <dt>Resource version</dt><dd>{detail.resourceVersion}</dd>
                <dt>Labels</dt><dd><Labels labels={detail.labels} /></dd>
                {meta.annotations?.["kiali_wizard"] || detail.labels?.["kiali_wizard"] ? <><dt>Generated by</dt><dd>Kiali wizard ({detail.labels?.["kiali_wizard"]})</dd></> : null}
              </dl>
            </section>
          )}
        </aside>
      </div>

      {confirm === "delete" && detail && (
        <ConfirmDialog title={`Delete ${detail.kind}`} busy={deleting}
          message={<p>Are you sure you want to delete the {detail.kind} <strong>{detail.name}</strong> in namespace <strong>{detail.namespace}</strong>? It cannot be undone.</p>}
          onConfirm={() => void remove()} onCancel={() => setConfirm(null)} />
      )}
      {confirm === "reload" && (
        <ConfirmDialog title="Discard unsaved changes?" confirmLabel="Reload"
          message={<p>You have unsaved changes. Reloading replaces them with the version stored on the server.</p>}
          onConfirm={() => void reload()} onCancel={() => setConfirm(null)} />
      )}
    </div>
  );
}
