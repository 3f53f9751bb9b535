"""`sluice demo` (the README's main command): start the daemon if needed and set up the user story.

Until the runtime lands (next issue) this creates namespace `tutorial`, applies Bookinfo (Services,
ServiceAccounts, Deployments), a DestinationRule per service and the story's 90:10 VirtualService for reviews,
then prints where to look and what to try next. Pods start running with the runtime.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sluice.client.api import ApiClient
from sluice.client.errors import ApiError
from sluice.client.kubeconfig import load_kubeconfig
from sluice.daemon import control
from sluice.daemon.state import Home

__all__ = ["run", "NAMESPACE", "sample_path"]

NAMESPACE = "tutorial"
SAMPLES = ("bookinfo.yaml", "destination-rule-all.yaml", "reviews-90-10.yaml")


def sample_path(name: str) -> str:
    return str(resources.files("sluice.samples").joinpath(name))


def run(home_dir: Path) -> int:
    from sluice.cli.main import run as cli

    home = Home(home_dir)
    rc = control.up(home_dir)
    if rc != 0:
        return rc
    kc = ["--kubeconfig", str(home.kubeconfig)]
    api = ApiClient(load_kubeconfig(str(home.kubeconfig)).rest_config())
    try:
        api.get(api.resolve("namespaces"), NAMESPACE, None)
    except ApiError:
        cli([*kc, "create", "namespace", NAMESPACE])
    finally:
        api.close()
    args = [*kc, "apply", "-n", NAMESPACE]
    for name in SAMPLES:
        args += ["-f", sample_path(name)]
    rc = cli(args)
    if rc != 0:
        return rc
    print(f"""
The control plane is up with Bookinfo's configuration in namespace {NAMESPACE}. Try the user story:

  export KUBECONFIG={home.kubeconfig}
  kubectl config set-context --current --namespace={NAMESPACE}
  kubectl get virtualservices,destinationrules
  KUBE_EDITOR="sed -i s/weight:\\ 90/weight:\\ 80/" kubectl edit virtualservice reviews   # rejected: 80 + 10 != 100
  kubectl apply -f {sample_path("virtual-service-reviews-v3.yaml")}
  sluice analyze -n {NAMESPACE}
  sluice down                      # stops the daemon; state stays in {home.root}

The runtime (pods as processes with Envoy sidecars) and telemetry come in the next milestones.
""")
    return 0
