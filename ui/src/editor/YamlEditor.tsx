// The YAML editor of the Istio config pages: CodeMirror 6 with YAML highlighting, folding, lint gutter.
// YAML syntax errors are linted as you type; callers add their own markers (validation checks, a rejected
// save) as field paths, resolved against the current text on every lint so they follow the edits.
import { forwardRef, useEffect, useImperativeHandle, useRef } from "react";
import { EditorState, StateEffect, type Extension } from "@codemirror/state";
import {
  EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars, keymap, lineNumbers,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab, insertNewline } from "@codemirror/commands";
import { bracketMatching, defaultHighlightStyle, foldEffect, foldGutter, foldKeymap, syntaxHighlighting } from "@codemirror/language";
import { forceLinting, lintGutter, linter, type Diagnostic } from "@codemirror/lint";
import { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
import { yaml } from "@codemirror/lang-yaml";
import { locateField, valueRange, yamlSyntaxErrors, type Severity, type TextDiagnostic } from "./yamlPaths";

/** A problem to draw at a field path (e.g. `spec.http[0].route`); `null` path = line 1. */
export interface EditorMarker { path: string | null; message: string; severity: Severity; source?: string }
/** Or an already-placed diagnostic (computed on a given text). */
export type EditorProblem = EditorMarker | TextDiagnostic;

export interface YamlEditorHandle {
  /** Scroll to and select the line of a field path. */
  reveal(path: string | null): void;
  focus(): void;
  getText(): string;
}

interface Props {
  /** The document to show; replaced in the editor whenever `docKey` changes. */
  doc: string;
  docKey: string | number;
  onChange: (text: string) => void;
  markers: EditorMarker[];
  readOnly?: boolean;
  /** Fields whose block is folded when a document is loaded (e.g. `metadata.managedFields`). */
  foldPaths?: string[];
  height?: string;
}

const theme = EditorView.theme({
  "&": { fontSize: "13px", backgroundColor: "#fff", height: "100%" },
  ".cm-scroller": { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace", lineHeight: "1.5" },
  ".cm-gutters": { backgroundColor: "#f5f6f8", borderRight: "1px solid #d8dde3", color: "#8a8d90" },
  ".cm-activeLine": { backgroundColor: "#f2f7fc" },
  ".cm-activeLineGutter": { backgroundColor: "#e7f1fa" },
  "&.cm-focused": { outline: "none" },
  ".cm-tooltip-lint": { maxWidth: "560px" },
  ".cm-diagnostic": { whiteSpace: "pre-wrap" },
});

/** Dispatched when the caller's markers change, so the linter runs again on the same text. */
const refreshLint = StateEffect.define<null>();

function toCm(d: TextDiagnostic, len: number): Diagnostic {
  const from = Math.min(d.from, len);
  return { from, to: Math.max(from, Math.min(d.to, len)), severity: d.severity, message: d.message, source: d.source };
}

const YamlEditor = forwardRef<YamlEditorHandle, Props>(function YamlEditor(
  { doc, docKey, onChange, markers, readOnly = false, foldPaths = ["metadata.managedFields"], height }, ref,
) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const markersRef = useRef<EditorMarker[]>(markers);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const foldRef = useRef(foldPaths);
  foldRef.current = foldPaths;

  const fold = (v: EditorView) => {
    const text = v.state.doc.toString();
    const effects = foldRef.current
      .map((p) => valueRange(text, p))
      .filter((r): r is { keyLineEnd: number; end: number } => !!r)
      .map((r) => foldEffect.of({ from: r.keyLineEnd, to: r.end }));
    if (effects.length) v.dispatch({ effects });
  };

  // Create once.
  useEffect(() => {
    const source = (v: EditorView): Diagnostic[] => {
      const text = v.state.doc.toString();
      const len = text.length;
      const out: Diagnostic[] = yamlSyntaxErrors(text).map((d) => toCm(d, len));
      for (const m of markersRef.current) {
        const span = "from" in m ? (m as unknown as TextDiagnostic) : locateField(text, m.path);
        out.push(toCm({ ...span, severity: m.severity, message: m.message, source: m.source }, len));
      }
      return out;
    };
    const extensions: Extension[] = [
      lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(), drawSelection(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }), bracketMatching(), highlightActiveLine(),
      highlightSelectionMatches(), yaml(), lintGutter(), linter(source, { delay: 250, needsRefresh: (u) => u.transactions.some((tr) => tr.effects.some((e) => e.is(refreshLint))) }),
      // Enter inserts a plain newline: YAML indentation is the user's (and typed text is kept as typed).
      keymap.of([{ key: "Enter", run: insertNewline }, ...defaultKeymap, ...historyKeymap, ...foldKeymap, ...searchKeymap, indentWithTab]),
      EditorState.tabSize.of(2), EditorView.editable.of(!readOnly), EditorState.readOnly.of(readOnly),
      EditorView.updateListener.of((u) => { if (u.docChanged) onChangeRef.current(u.state.doc.toString()); }),
      EditorView.contentAttributes.of({ "aria-label": "YAML" }), theme,
    ];
    const v = new EditorView({ state: EditorState.create({ doc, extensions }), parent: host.current! });
    view.current = v;
    fold(v);
    return () => { v.destroy(); view.current = null; };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [readOnly]);

  // Replace the document when the caller loads a new one.
  const lastKey = useRef(docKey);
  useEffect(() => {
    const v = view.current;
    if (!v || lastKey.current === docKey) return;
    lastKey.current = docKey;
    if (v.state.doc.toString() !== doc) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: doc }, selection: { anchor: 0 }, scrollIntoView: true });
    }
    fold(v);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [docKey, doc]);

  // New markers: re-lint now.
  useEffect(() => {
    markersRef.current = markers;
    const v = view.current;
    if (v) { v.dispatch({ effects: refreshLint.of(null) }); forceLinting(v); }
  }, [markers]);

  useImperativeHandle(ref, () => ({
    reveal(path: string | null) {
      const v = view.current;
      if (!v) return;
      const span = locateField(v.state.doc.toString(), path);
      v.dispatch({ selection: { anchor: span.from, head: span.to }, scrollIntoView: true });
      v.focus();
    },
    focus() { view.current?.focus(); },
    getText() { return view.current?.state.doc.toString() ?? ""; },
  }), []);

  return <div className="yaml-editor" data-testid="yaml-editor" ref={host} style={height ? { height } : undefined} />;
});

export default YamlEditor;
