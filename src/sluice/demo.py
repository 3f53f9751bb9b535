"""`sluice demo` (the README's main command): start the daemon if needed and set up the user story.

Until the runtime lands (next issue) this creates namespace `tutorial` and applies the story's 90:10
VirtualService for reviews, then prints where to look and what to try next.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sluice.daemon import control
from sluice.daemon.state import Home

__all__ = ["run"]

NAMESPACE = "tutorial"


class _Api:
    def __init__(self, home: Home) -> None:
        run = home.read_run() or {}
        self.base = str(run.get("api", "https://127.0.0.1:6443"))
        self.token = home.token()
        self.ctx = ssl.create_default_context(cafile=str(home.root / "pki" / "ca.crt"))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return int(r.status), json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            return int(e.code), json.loads(e.read() or b"{}")


def run(home_dir: Path) -> int:
    home = Home(home_dir)
    rc = control.up(home_dir)
    if rc != 0:
        return rc
    api = _Api(home)
    code, _ = api.call("GET", f"/api/v1/namespaces/{NAMESPACE}")
    if code == 404:
        api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": NAMESPACE}})
        print(f"namespace/{NAMESPACE} created")
    vs = yaml.safe_load(resources.files("sluice.samples").joinpath("reviews-90-10.yaml").read_text())
    base = f"/apis/networking.istio.io/v1alpha3/namespaces/{NAMESPACE}/virtualservices"
    code, body = api.call("GET", f"{base}/reviews")
    if code == 404:
        code, body = api.call("POST", base, vs)
        print("virtualservice.networking.istio.io/reviews created" if code == 201 else body.get("message"))
    else:
        print("virtualservice.networking.istio.io/reviews unchanged")
    print(f"""
The control plane is up. Try the user story's steps:

  export KUBECONFIG={home.kubeconfig}
  kubectl config set-context --current --namespace={NAMESPACE}
  kubectl get virtualservices
  KUBE_EDITOR="sed -i s/weight:\\ 90/weight:\\ 80/" kubectl edit virtualservice reviews   # rejected: weights must total 100
  sluice analyze -n {NAMESPACE}
  sluice down
""")
    return 0
