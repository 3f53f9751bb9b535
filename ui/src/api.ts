// The console's JSON API (served by the daemon under /api/, see docs/console-api.md).
// Every call resolves to the parsed JSON or throws an ApiError carrying the server's message; a 401 (no valid
// session) also asks the app to show the login dialog (./auth.ts).
import { loginRequired } from "./auth";

export type Health = "Healthy" | "Degraded" | "Failure" | "NA";

export interface StatusCause { reason?: string; message?: string; field?: string }
export interface KubeStatus { message?: string; reason?: string; code?: number; details?: { causes?: StatusCause[] } }

export class ApiError extends Error {
  constructor(public readonly code: number, message: string, public readonly status?: KubeStatus) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = contentType;
  }
  let resp: Response;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, `cannot reach the Sluice daemon: ${String(e)}`);
  }
  if (resp.status === 401) loginRequired();
  const text = await resp.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(resp.status, `unexpected answer from ${path}: ${text.slice(0, 200)}`);
  }
  if (!resp.ok) {
    const err = (data ?? {}) as { error?: string; status?: KubeStatus };
    throw new ApiError(resp.status, err.error ?? `${resp.status} ${resp.statusText}`, err.status);
  }
  return data as T;
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body: unknown, contentType?: string) => request<T>("POST", path, body, contentType),
  put: <T>(path: string, body: unknown, contentType?: string) => request<T>("PUT", path, body, contentType),
  del: <T>(path: string) => request<T>("DELETE", path),
};

export const enc = encodeURIComponent;
