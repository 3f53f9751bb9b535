import { useEffect, useMemo, useRef, useState } from "react";
import { useNavigate, useSearchParams } from "react-router-dom";
import { api, ApiError, enc } from "../api";
import { useToast } from "../components/Toast";
import PageHeader from "../components/PageHeader";
import { detailPath, type IstioDetail } from "../components/istio";
import YamlEditor, { type EditorMarker, type YamlEditorHandle } from "../editor/YamlEditor";
import { EditorError, SyntaxErrors } from "../editor/EditorParts";
import { CREATE_KINDS, isCreateKind, template, type CreateKind } from "../editor/templates";
import { locateField, parseObject, serverErrorMarkers, setField, yamlSyntaxErrors } from "../editor/yamlPaths";
import { useUnsavedChangesGuard } from "../editor/useUnsavedChangesGuard";
import "../components/details.css";

const NS_KEY = "sluice.namespace";
interface SaveError { title: string; message: string; markers: EditorMarker[] }

// Create an Istio object from a per-kind YAML template (POST /api/namespaces/{ns}/istio/{kind}).
export default function IstioConfigNewPage() {
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const toast = useToast();
  const editor = useRef<YamlEditorHandle>(null);
  const kindParam = params.get("kind");
  const kind: CreateKind = isCreateKind(kindParam) ? kindParam : "VirtualService";
  const ns = params.get("namespace") || localStorage.getItem(NS_KEY) || "default";
  const [namespaces, setNamespaces] = useState<string[]>([]);
  const [base, setBase] = useState(() => template(kind, ns));
  const [text, setText] = useState(base);
  const [docKey, setDocKey] = useState(0);
  const [saveError, setSaveError] = useState<SaveError | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    api.get<{ namespaces: { name: string }[] }>("/api/namespaces")
      .then((d) => setNamespaces(d.namespaces.map((n) => n.name))).catch(() => setNamespaces([]));
  }, []);

  const modified = text !== base;
  useUnsavedChangesGuard(modified && !saving);
  const syntaxErrors = useMemo(() => yamlSyntaxErrors(text), [text]);

  const replaceDoc = (next: string, asBase: boolean) => {
    if (asBase) setBase(next);
    setText(next);
    setDocKey((k) => k + 1);
    setSaveError(null);
  };

  const chooseKind = (k: CreateKind) => {
    if (modified && !window.confirm("Replace your changes with the template of " + k + "?")) return;
    setParams((p) => { const n = new URLSearchParams(p); n.set("kind", k); return n; }, { replace: true });
    replaceDoc(template(k, ns), true);
  };
  const chooseNamespace = (v: string) => {
    localStorage.setItem(NS_KEY, v);
    setParams((p) => { const n = new URLSearchParams(p); n.set("namespace", v); return n; }, { replace: true });
    if (!modified) replaceDoc(template(kind, v), true);
    else replaceDoc(setField(text, ["metadata", "namespace"], v), false);
  };

  const obj = useMemo(() => parseObject(text), [text]);
  const objKind = typeof obj?.kind === "string" ? obj.kind : kind;
  const objName = String((obj?.metadata as { name?: unknown } | undefined)?.name ?? "");

  const create = async () => {
    if (syntaxErrors.length || saving) return;
    setSaving(true);
    try {
      const d = await api.post<IstioDetail>(`/api/namespaces/${enc(ns)}/istio/${enc(objKind)}`, text, "application/yaml");
      setSaveError(null);
      const n = d?.name || objName;
      const k = d?.kind || objKind;
      const dns = d?.namespace || ns;
      toast("success", `${k} ${n} created`, `Changes applied on ${dns} / ${k} / ${n}`);
      setBase(text);
      navigate(detailPath(dns, k, n));
    } catch (e) {
      const err = e as ApiError;
      const title = `Could not create ${objKind}${objName ? ` ${objName}` : ""}`;
      toast("danger", title, err.message);
      setSaveError({ title, message: err.message,
        markers: serverErrorMarkers(err.message, err.status).map((m) => ({ ...m, severity: "error" as const, source: "Server" })) });
    } finally {
      setSaving(false);
    }
  };

  const nsOptions = namespaces.includes(ns) ? namespaces : [ns, ...namespaces];
  const errorLine = saveError && saveError.markers[0] ? locateField(text, saveError.markers[0].path).line : null;
  return (
    <div className="istio-detail-page">
      <PageHeader crumbs={[{ label: "Istio Config", to: `/istio?namespace=${enc(ns)}` }, { label: "Create" }]}
        kind={kind} title={`Create ${kind}`} />
      <div className="toolbar">
        <label>
          Type
          <select data-testid="create-kind" value={kind} onChange={(e) => chooseKind(e.target.value as CreateKind)}>
            {CREATE_KINDS.map((k) => <option key={k} value={k}>{k}</option>)}
          </select>
        </label>
        <label>
          Namespace
          <select data-testid="namespace-select" value={ns} onChange={(e) => chooseNamespace(e.target.value)}>
            {nsOptions.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
        <span className="muted small">Edit the template, then Create. The object is validated by the server.</span>
      </div>
      {saveError && (
        <EditorError title={saveError.title} message={saveError.message} line={errorLine}
          onDismiss={() => setSaveError(null)} onReveal={() => editor.current?.reveal(saveError.markers[0]?.path ?? null)} />
      )}
      <div className="editor-layout">
        <div className="editor-main">
          <div className="editor-frame">
            <YamlEditor ref={editor} doc={text} docKey={docKey} onChange={setText} markers={saveError?.markers ?? []} />
          </div>
          <SyntaxErrors errors={syntaxErrors} />
          <div className="editor-actions">
            <button className="primary" data-testid="save" disabled={syntaxErrors.length > 0 || saving} onClick={() => void create()}>
              {saving ? "Creating…" : "Create"}
            </button>
            <button data-testid="reset" disabled={!modified} onClick={() => replaceDoc(template(kind, ns), true)}>Reset template</button>
            <button className="link-button" onClick={() => navigate(`/istio?namespace=${enc(ns)}`)}>Cancel</button>
          </div>
        </div>
      </div>
    </div>
  );
}
