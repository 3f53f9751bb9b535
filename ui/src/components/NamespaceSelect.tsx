import { useEffect, useState } from "react";
import { api } from "../api";
import { useNamespace } from "../namespace";

// The namespace picker every namespaced page shows in its toolbar.
export default function NamespaceSelect() {
  const [ns, setNs] = useNamespace();
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    api.get<{ namespaces: { name: string }[] }>("/api/namespaces")
      .then((d) => setNames(d.namespaces.map((n) => n.name)))
      .catch(() => setNames([]));
  }, []);
  const options = names.includes(ns) ? names : [ns, ...names];
  return (
    <label>
      Namespace
      <select data-testid="namespace-select" value={ns} onChange={(e) => setNs(e.target.value)}>
        {options.map((n) => <option key={n} value={n}>{n}</option>)}
      </select>
    </label>
  );
}
