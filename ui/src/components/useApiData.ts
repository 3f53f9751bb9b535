import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api";
import { onLoggedIn } from "../auth";
import { useToast } from "./Toast";

// Load a JSON API path (and reload it every `intervalMs`, when given). Errors are toasted once per run
// of failures (with the server's message) and kept in `error`; the last good data stays shown.
export function useApiData<T>(path: string | null, intervalMs = 0): {
  data: T | null; error: ApiError | null; loading: boolean; reload: () => void;
} {
  const toast = useToast();
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(!!path);
  const [tick, setTick] = useState(0);
  const lastToast = useRef<string | null>(null);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useEffect(() => onLoggedIn(reload), [reload]);
  useEffect(() => {
    setData(null);
    setError(null);
    lastToast.current = null;
  }, [path]);
  useEffect(() => {
    if (!path) return;
    let cancelled = false;
    const load = () => {
      setLoading(true);
      api.get<T>(path)
        .then((d) => {
          if (cancelled) return;
          setData(d);
          setError(null);
          lastToast.current = null;
        })
        .catch((e: unknown) => {
          if (cancelled) return;
          const err = e instanceof ApiError ? e : new ApiError(0, String(e));
          setError(err);
          if (lastToast.current !== err.message) {
            lastToast.current = err.message;
            toast("danger", `Could not load ${path.split("?")[0]}`, err.message);
          }
        })
        .finally(() => {
          if (!cancelled) setLoading(false);
        });
    };
    load();
    const timer = intervalMs > 0 ? window.setInterval(load, intervalMs) : 0;
    return () => {
      cancelled = true;
      if (timer) window.clearInterval(timer);
    };
  }, [path, intervalMs, tick, toast]);
  return { data, error, loading, reload };
}
