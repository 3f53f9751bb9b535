"""The console's backend: the JSON API the React UI (ui/) reads, served by the daemon on the console port.

Modules: `api` (aiohttp routing and handlers: the only one doing I/O), `params` (request parameters and the
console's errors), `graph` (the Kiali traffic graph and health), `configs` (Istio config validation status),
`inventory` (workloads, apps, services), `charts` (metric-chart PromQL and shaping), `logs` (which
containers, the `sinceTime` cursor, the merge), `wizard` (traffic shifting), `bodies` (request bodies and the
editor's YAML) and `worker` (the process that does a large object's decoding, admission, validation and YAML off
the daemon's event loop). All but `api` and `worker` are pure.
"""
