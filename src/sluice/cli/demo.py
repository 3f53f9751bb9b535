"""`sluice demo` (the README's main command): the user story's starting point, running.

Starts the daemon if needed, creates namespace `tutorial`, applies Bookinfo (Services, ServiceAccounts,
Deployments incl. reviews v1, v2 and v3), a DestinationRule per service, the `sleep` sample, the story's 90:10
VirtualService, the ingress gateway with Bookinfo's Gateway, and a steady traffic generator into productpage;
waits with a progress display until every pod is ready; prints where to look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from sluice.client.api import ApiClient
from sluice.client.errors import ApiError
from sluice.client.kubeconfig import load_kubeconfig
from sluice.daemon import control
from sluice.daemon.state import Home
from sluice.samples import sample_path

__all__ = ["run", "NAMESPACE", "ingress_url"]

NAMESPACE = "tutorial"
GATEWAY_NAMESPACE = "istio-system"
SAMPLES = ("bookinfo.yaml", "destination-rule-all.yaml", "sleep.yaml", "reviews-90-10.yaml",
           "bookinfo-gateway.yaml", "traffic-generator.yaml")
READY_TIMEOUT = 180.0



def _ready_counts(api: ApiClient, namespaces: tuple[str, ...]) -> tuple[int, int]:
    info = api.resolve("deployments")
    want = ready = 0
    for ns in namespaces:
        for d in api.list(info, ns).get("items", []):
            want += int((d.get("spec") or {}).get("replicas", 1))
            ready += min(int((d.get("status") or {}).get("availableReplicas", 0)),
                         int((d.get("spec") or {}).get("replicas", 1)))
    return ready, want


def _wait_ready(api: ApiClient, console: Console) -> bool:
    namespaces = (NAMESPACE, GATEWAY_NAMESPACE)
    deadline = time.monotonic() + READY_TIMEOUT
    with Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} pods ready"), console=console, transient=False) as bar:
        task = bar.add_task("starting Bookinfo", total=None)
        while time.monotonic() < deadline:
            ready, want = _ready_counts(api, namespaces)
            bar.update(task, completed=ready, total=want)
            if want and ready >= want:
                return True
            time.sleep(0.1)
    return False


def ingress_url(api: ApiClient, port_name: str = "http2", scheme: str = "http") -> str:
    """Where the ingress gateway answers, read as Istio's docs read it: the Service's load-balancer address
    (`status.loadBalancer.ingress[0].ip`) and its `http2` port."""
    svc = api.get(api.resolve("services"), "istio-ingressgateway", GATEWAY_NAMESPACE)
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
    host = str(ingress[0].get("ip") or "127.0.0.1")
    port = next((int(p["port"]) for p in (svc.get("spec") or {}).get("ports") or []
                 if isinstance(p, dict) and p.get("name") == port_name), 80)
    default = 80 if scheme == "http" else 443
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def run(home_dir: Path, cli: Callable[[list[str]], int]) -> int:
    """The demo; `cli` runs one `sluice` command line (its `apply` steps print as the CLI does)."""

    console = Console()
    home = Home(home_dir)
    rc = control.up(home_dir)
    if rc != 0:
        return rc
    kc = ["--kubeconfig", str(home.kubeconfig)]
    api = ApiClient(load_kubeconfig(str(home.kubeconfig)).rest_config())
    try:
        try:
            api.get(api.resolve("namespaces"), NAMESPACE, None)
        except ApiError:
            cli([*kc, "create", "namespace", NAMESPACE])
        rc = cli([*kc, "apply", "-f", sample_path("ingressgateway.yaml")])
        args = [*kc, "apply", "-n", NAMESPACE]
        for name in SAMPLES:
            args += ["-f", sample_path(name)]
        rc = rc or cli(args)
        if rc != 0:
            return rc
        if not _wait_ready(api, console):
            console.print("[red]error:[/] not every pod became ready; see `sluice get pods -A` and "
                          f"{home.logfile}")
            return 1
        productpage = ingress_url(api) + "/productpage"
    finally:
        api.close()
    console.print(f"""
[bold]Bookinfo is running in namespace {NAMESPACE}[/], with a steady stream of requests into productpage.

  productpage   {productpage}   (reviews split 90:10 between v2 and v3)
  console       {control.console_login_url(home, f"/graph?namespace={NAMESPACE}")}
                (the traffic graph, with a one-time login token; `sluice console` prints a fresh one)
  kubeconfig    export KUBECONFIG={home.kubeconfig}

Try the user story:

  kubectl config set-context --current --namespace={NAMESPACE}
  kubectl get pods,virtualservices,destinationrules
  KUBE_EDITOR="sed -i s/weight:\\ 90/weight:\\ 80/" kubectl edit virtualservice reviews   # rejected: 80 + 10 != 100
  kubectl apply -f {sample_path("virtual-service-reviews-v3.yaml")}
  kubectl logs -l app=reviews,version=v2 -c istio-proxy
  kubectl delete deployment reviews-v2
  sluice proxy-status
  sluice down                      # stops every pod and the daemon; state stays in {home.root}
""", soft_wrap=True)
    return 0
