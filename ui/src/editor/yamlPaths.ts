// Pure helpers for the YAML editor: where in the text a field path lives, what is wrong with the text
// as YAML, and how a server error maps onto lines. No DOM, no CodeMirror: tested with vitest.
import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from "yaml";

export type Severity = "error" | "warning" | "info";

/** A range of the text (character offsets) plus its 1-based line number. */
export interface Span { from: number; to: number; line: number }

/** A problem to draw in the editor. */
export interface TextDiagnostic extends Span { severity: Severity; message: string; source?: string }

/**
 * Splits a field path into segments. Accepts Kubernetes' `spec.http[0].route`, Kiali's `spec/http[0]/route`
 * and bracketed keys such as `metadata.labels[app.kubernetes.io/name]` or `metadata.annotations['a.b/c']`.
 */
export function parseFieldPath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  let cur = "";
  let i = 0;
  const flush = () => { if (cur !== "") out.push(cur); cur = ""; };
  while (i < path.length) {
    const c = path[i];
    if (c === "." || c === "/") { flush(); i++; continue; }
    if (c === "[") {
      flush();
      const end = path.indexOf("]", i + 1);
      const inner = end < 0 ? path.slice(i + 1) : path.slice(i + 1, end);
      i = end < 0 ? path.length : end + 1;
      if (/^\s*\d+\s*$/.test(inner)) out.push(Number(inner));
      else out.push(inner.replace(/^(['"])(.*)\1$/, "$2"));
      continue;
    }
    cur += c;
    i++;
  }
  flush();
  return out;
}

/** 1-based line number of a character offset. */
export function lineOf(text: string, offset: number): number {
  let line = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** The span covering the text of line `line` (1-based) from its first non-blank character to its end. */
export function lineSpan(text: string, line: number): Span {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) break;
    start = nl + 1;
  }
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  let from = start;
  while (from < end && (text[from] === " " || text[from] === "\t")) from++;
  if (from === end) from = start;
  return { from, to: end, line: lineOf(text, start) };
}

function spanAt(text: string, offset: number): Span {
  return lineSpan(text, lineOf(text, offset));
}

function keyValue(k: unknown): unknown {
  return isScalar(k) ? k.value : k;
}

/**
 * Where `path` lives in the YAML `text`: the line of the deepest part of the path that exists (for
 * `spec.http[0].route`, the line of `route:` under the first `http` entry). Falls back to line 1.
 */
export function locateField(text: string, path: string | null | undefined, doc?: Document): Span & { exact: boolean } {
  const segments = path ? parseFieldPath(path) : [];
  let d: Document;
  try {
    d = doc ?? parseDocument(text, { keepSourceTokens: false });
  } catch {
    return { ...lineSpan(text, 1), exact: false };
  }
  let node: unknown = d.contents;
  let best: number | null = null;
  let matched = 0;
  for (const seg of segments) {
    if (typeof seg === "number" && isSeq(node)) {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item || !item.range) break;
      best = item.range[0];
      node = item;
    } else if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && String(keyValue(p.key)) === String(seg));
      if (!pair) break;
      const key = pair.key as YamlNode | null;
      if (key && key.range) best = key.range[0];
      else if (pair.value && (pair.value as YamlNode).range) best = (pair.value as YamlNode).range![0];
      node = pair.value;
    } else {
      break;
    }
    matched++;
  }
  if (best === null) return { ...lineSpan(text, 1), exact: segments.length === 0 };
  return { ...spanAt(text, best), exact: matched === segments.length };
}

/** The character range of a field's value (e.g. the whole `managedFields` block), or null. */
export function valueRange(text: string, path: string): { keyLineEnd: number; end: number } | null {
  let d: Document;
  try { d = parseDocument(text); } catch { return null; }
  let node: unknown = d.contents;
  let keyStart: number | null = null;
  for (const seg of parseFieldPath(path)) {
    if (typeof seg === "number" && isSeq(node)) { node = node.items[seg]; keyStart = null; continue; }
    if (!isMap(node)) return null;
    const pair = node.items.find((p) => isPair(p) && String(keyValue(p.key)) === String(seg));
    if (!pair) return null;
    keyStart = (pair.key as YamlNode | null)?.range?.[0] ?? null;
    node = pair.value;
  }
  const v = node as YamlNode | null;
  if (keyStart === null || !v || !v.range) return null;
  let keyLineEnd = text.indexOf("\n", keyStart);
  if (keyLineEnd < 0) keyLineEnd = text.length;
  let end = v.range[1];
  while (end > keyLineEnd && (text[end - 1] === "\n" || text[end - 1] === " ")) end--;
  return end > keyLineEnd ? { keyLineEnd, end } : null;
}

/** YAML syntax problems of `text` (as you type). The body must be one YAML mapping (one object). */
export function yamlSyntaxErrors(text: string): TextDiagnostic[] {
  const out: TextDiagnostic[] = [];
  let doc: Document;
  try {
    doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  } catch (e) {
    return [{ ...lineSpan(text, 1), severity: "error", message: String(e), source: "YAML" }];
  }
  for (const e of doc.errors) {
    const from = Math.max(0, Math.min(e.pos[0], text.length));
    const to = Math.max(from, Math.min(e.pos[1], text.length));
    const msg = e.message.split("\n")[0];
    out.push({ from, to, line: lineOf(text, from), severity: "error", message: msg, source: "YAML" });
  }
  if (out.length === 0) {
    const c = doc.contents;
    if (text.trim() === "" || c === null) {
      out.push({ ...lineSpan(text, 1), severity: "error", message: "The document is empty: it must describe one object", source: "YAML" });
    } else if (!isMap(c)) {
      out.push({ ...lineSpan(text, 1), severity: "error", message: "The document must be a YAML mapping (one object with apiVersion, kind, metadata, spec)", source: "YAML" });
    }
  }
  return out;
}

/** Parsed object of the text, or null when it does not parse. */
export function parseObject(text: string): Record<string, unknown> | null {
  try {
    const doc = parseDocument(text);
    if (doc.errors.length) return null;
    const v = doc.toJS();
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Makes sure the body carries `metadata.resourceVersion` (so the server detects concurrent edits):
 * when the user removed it, the loaded object's version is put back. Text is returned untouched otherwise.
 */
export function ensureResourceVersion(text: string, resourceVersion: string | undefined): string {
  if (!resourceVersion) return text;
  const doc = parseDocument(text);
  if (doc.errors.length || !isMap(doc.contents)) return text;
  const rv = doc.getIn(["metadata", "resourceVersion"]);
  if (rv !== undefined && rv !== null && String(rv) !== "") return text;
  doc.setIn(["metadata", "resourceVersion"], resourceVersion);
  return doc.toString();
}

/** Sets a string field (e.g. `metadata.namespace`) keeping the rest of the text's formatting. */
export function setField(text: string, path: (string | number)[], value: string): string {
  const doc = parseDocument(text);
  if (doc.errors.length || !isMap(doc.contents)) return text;
  doc.setIn(path, value);
  return doc.toString();
}

export interface ServerStatusLike {
  message?: string;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

/**
 * Where a rejected save's error belongs: one marker per `details.causes[].field` of the Kubernetes Status.
 * With one cause (or none) the message is the server's message verbatim. Without fields, a
 * `... is invalid: <field>: ...` in the message is used, else no path (line 1).
 */
export function serverErrorMarkers(message: string, status?: ServerStatusLike): { path: string | null; message: string }[] {
  const causes = (status?.details?.causes ?? []).filter((c) => c.field);
  if (causes.length === 0) {
    const m = /is invalid: ([A-Za-z0-9_.\[\]\/'"-]+):/.exec(message);
    return [{ path: m ? m[1] : null, message }];
  }
  return causes.map((c) => ({
    path: c.field ?? null,
    message: causes.length === 1 ? message : `${c.field}: ${c.message ?? message}`,
  }));
}

/** The editor diagnostics for a rejected save, placed on `text` (see serverErrorMarkers). */
export function serverErrorDiagnostics(text: string, message: string, status?: ServerStatusLike): TextDiagnostic[] {
  let doc: Document | undefined;
  try { doc = parseDocument(text); } catch { doc = undefined; }
  return serverErrorMarkers(message, status).map((m) => {
    const span = locateField(text, m.path, doc);
    return { from: span.from, to: span.to, line: span.line, severity: "error" as const, message: m.message, source: "Server" };
  });
}
