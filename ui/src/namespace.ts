import { useCallback } from "react";
import { useSearchParams } from "react-router-dom";

// The selected namespace lives in the URL (`?namespace=`) so every page is bookmarkable; the last
// choice is remembered for pages opened without one.
const KEY = "sluice.namespace";

export function useNamespace(): [string, (ns: string) => void] {
  const [params, setParams] = useSearchParams();
  const ns = params.get("namespace") || localStorage.getItem(KEY) || "default";
  const set = useCallback((value: string) => {
    localStorage.setItem(KEY, value);
    setParams((p) => {
      const next = new URLSearchParams(p);
      next.set("namespace", value);
      return next;
    });
  }, [setParams]);
  return [ns, set];
}
