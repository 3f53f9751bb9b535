"""Write docs/istio-tasks.md: every Istio traffic-management task and sample, whether it runs on Sluice, and
the test that proves it; then the Istio fields Sluice stores but does not program yet (`gaps` of the table in
sluice.validation.istio.programmed, so the page follows the table too).

The proof is the tests themselves: a test marked `@pytest.mark.istio_task("traffic-management/<page>", "Title")`
(or `istio_sample("<dir>", "Title")`) runs that task with the docs' manifests and commands. This script
collects the marks with pytest (only the files that mention them are imported) and renders the page against
`TASKS`/`SAMPLES` below, the docs' own index, which says why each unmarked entry does not run yet. A mark for
a page missing from the index still gets a row, with the mark's title.

    python scripts/istio_tasks.py           # rewrite docs/istio-tasks.md (`make docs`)
    python scripts/istio_tasks.py --check   # exit 1 if the page is stale (tests/unit/test_istio_tasks_doc.py)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "istio-tasks.md"
TASKS_URL = "https://istio.io/latest/docs/tasks/"
SAMPLES_URL = "https://github.com/istio/istio/tree/master/samples/"
MARKS = ("istio_task", "istio_sample")

_NO_TEST = "the parts it needs are programmed, but no test runs the task as the docs write it yet"


@dataclass(frozen=True)
class Entry:
    path: str  # under TASKS_URL or SAMPLES_URL
    title: str  # as the docs title it
    not_yet: str  # why it does not run on Sluice yet (shown while no test is marked for it)


# istio.io/latest/docs/tasks/traffic-management/, in the docs' order (Ingress and Egress are sub-sections).
TASKS: tuple[Entry, ...] = (
    Entry("traffic-management/request-routing", "Request Routing", ""),
    Entry("traffic-management/fault-injection", "Fault Injection", ""),
    Entry("traffic-management/traffic-shifting", "Traffic Shifting", ""),
    Entry("traffic-management/tcp-traffic-shifting", "TCP Traffic Shifting",
          _NO_TEST),
    Entry("traffic-management/request-timeouts", "Request Timeouts", ""),
    Entry("traffic-management/circuit-breaking", "Circuit Breaking", ""),
    Entry("traffic-management/mirroring", "Mirroring", ""),
    Entry("traffic-management/locality-load-balancing/failover", "Locality failover",
          "needs workloads in several regions and zones (several clusters); Sluice is one machine with one "
          "locality, and `localityLbSetting` is not programmed"),
    Entry("traffic-management/locality-load-balancing/distribute", "Locality weighted distribution",
          "needs workloads in several regions and zones (several clusters); Sluice is one machine with one "
          "locality, and `localityLbSetting` is not programmed"),
    Entry("traffic-management/ingress/ingress-control", "Ingress Gateways", _NO_TEST),
    Entry("traffic-management/ingress/secure-ingress", "Secure Gateways",
          _NO_TEST),
    Entry("traffic-management/ingress/ingress-sni-passthrough", "Ingress Gateway without TLS Termination",
          f"{_NO_TEST} (Gateway `PASSTHROUGH` servers and VirtualService `tls` routes are tested with a real "
          "Envoy, not with the task's nginx)"),
    Entry("traffic-management/ingress/ingress-sidecar-tls-termination", "Ingress Sidecar TLS Termination",
          "needs PeerAuthentication (mesh mTLS), which Sluice does not serve, and a Sidecar's `ingress` listeners, "
          "which it stores but does not program"),
    Entry("traffic-management/ingress/kubernetes-ingress", "Kubernetes Ingress",
          "the `networking.k8s.io` Ingress kind is not served"),
    Entry("traffic-management/ingress/gateway-api", "Kubernetes Gateway API",
          "the `gateway.networking.k8s.io` kinds are not served"),
    Entry("traffic-management/ingress/gateway-api-inference-extension", "Kubernetes Gateway API Inference Extension",
          "the Gateway API and InferencePool kinds and Envoy's ext_proc filter are not served"),
    Entry("traffic-management/egress/egress-control", "Accessing External Services",
          _NO_TEST),
    Entry("traffic-management/egress/egress-tls-origination", "Egress TLS Origination",
          f"{_NO_TEST} (ServiceEntry and DestinationRule TLS origination are tested on their own)"),
    Entry("traffic-management/egress/egress-gateway", "Egress Gateways",
          _NO_TEST),
    Entry("traffic-management/egress/egress-gateway-tls-origination", "Egress Gateways with TLS Origination",
          f"{_NO_TEST} (the egress gateway and TLS origination are tested on their own)"),
    Entry("traffic-management/egress/wildcard-egress-hosts", "Egress using Wildcard Hosts",
          _NO_TEST),
    Entry("traffic-management/egress/egress-kubernetes-services", "Kubernetes Services for Egress Traffic",
          _NO_TEST),
    Entry("traffic-management/egress/http-proxy", "Using an External HTTPS Proxy",
          f"{_NO_TEST} (it needs a TCP ServiceEntry to an HTTPS proxy outside the mesh)"),
)

# istio/istio samples/ (the applications; the tasks above use them).
SAMPLES: tuple[Entry, ...] = (
    Entry("bookinfo", "Bookinfo", ""),
    Entry("httpbin", "httpbin", ""),
    Entry("httpbin/sample-client", "fortio (httpbin's sample client)", ""),
    Entry("curl", "curl", ""),
    Entry("sleep", "sleep", ""),
    Entry("helloworld", "helloworld", ""),
    Entry("tcp-echo", "tcp-echo", ""),
    Entry("websockets", "websockets", "its image (a Tornado app) is not one of the built-in programs"),
    Entry("grpc-echo", "grpc-echo", "its image is not one of the built-in programs"),
    Entry("extauthz", "extauthz", "needs AuthorizationPolicy and the ext_authz filter, which Sluice does not serve"),
    Entry("ratelimit", "ratelimit", "needs EnvoyFilter, which Sluice does not serve"),
    Entry("jwt-server", "jwt-server", "needs RequestAuthentication, which Sluice does not serve"),
    Entry("open-telemetry", "open-telemetry", "tracing and the OpenTelemetry collector are not served"),
    Entry("addons", "addons (Prometheus, Grafana, Kiali, Jaeger)",
          "their images do not run; Sluice serves a Prometheus-compatible API and a Kiali-like console itself"),
)


@dataclass(frozen=True)
class Mark:
    kind: str  # "istio_task" or "istio_sample"
    path: str
    title: str
    test: str  # node id without parameters


def _normalise(path: str) -> str:
    p = path.strip().strip("/")
    for prefix in ("https://istio.io/latest/docs/tasks/", "docs/tasks/", "tasks/", "samples/"):
        p = p.removeprefix(prefix)
    return p.strip("/")


class _Collector:
    """A pytest plugin: the istio_task / istio_sample marks of every collected test."""

    def __init__(self) -> None:
        self.marks: list[Mark] = []

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            for kind in MARKS:
                for m in item.iter_markers(kind):
                    args = list(m.args) + [m.kwargs.get(k) for k in ("path", "title")][len(m.args):]
                    path, title = (str(a or "") for a in (args + ["", ""])[:2])
                    self.marks.append(Mark(kind, _normalise(path), title, item.nodeid.split("[", 1)[0]))


def _marked_files() -> list[str]:
    """Test files that mention a mark (importing the whole suite would take much longer)."""
    return sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests").rglob("test_*.py")
                  if any(m in f.read_text(encoding="utf-8") for m in MARKS))


def collect() -> list[Mark]:
    import pytest

    files = _marked_files()
    if not files:
        return []
    collector = _Collector()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.chdir(ROOT):
        code = pytest.main(["--collect-only", "-qq", "-p", "no:cacheprovider", *files], plugins=[collector])
    if code not in (0, 5):  # 5: nothing collected
        raise SystemExit(f"collecting the marked tests failed ({code}):\n{out.getvalue()}")
    return sorted(set(collector.marks), key=lambda m: (m.kind, m.path, m.test))


def _rows(entries: tuple[Entry, ...], marks: list[Mark], url: str) -> list[str]:
    by_path: dict[str, list[Mark]] = {}
    for m in marks:
        by_path.setdefault(m.path, []).append(m)
    known = {e.path for e in entries}
    extra = [Entry(p, ms[0].title or p, "") for p, ms in sorted(by_path.items()) if p not in known]
    lines = ["| Page | Runs on Sluice | Proved by |", "|---|---|---|"]
    for e in (*entries, *extra):
        tests = sorted({m.test for m in by_path.get(e.path, [])})
        link = f"[{e.title}]({url}{e.path}/)"
        if tests:
            lines.append(f"| {link} | yes | {'<br>'.join(f'`{t}`' for t in tests)} |")
        else:
            lines.append(f"| {link} | not yet: {e.not_yet or 'no test runs it yet'} | — |")
    return lines


def render(marks: list[Mark]) -> str:
    tasks = [m for m in marks if m.kind == "istio_task"]
    samples = [m for m in marks if m.kind == "istio_sample"]
    groups = (("Traffic management", lambda p: p.count("/") == 1 or "/locality-load-balancing/" in p),
              ("Ingress", lambda p: p.startswith("traffic-management/ingress/")),
              ("Egress", lambda p: p.startswith("traffic-management/egress/")))
    lines = [
        "# Istio's tasks and samples on Sluice",
        "",
        "<!-- Generated by `make docs` (scripts/istio_tasks.py) from the tests' `istio_task` and `istio_sample`",
        "     marks; tests/unit/test_istio_tasks_doc.py fails when this page is stale. Do not edit by hand. -->",
        "",
        "Every traffic-management task of [Istio's documentation](https://istio.io/latest/docs/tasks/traffic-management/)",
        "and the sample applications in [istio/istio `samples/`](https://github.com/istio/istio/tree/master/samples):",
        "whether it runs on Sluice, and the test that proves it. A test marked",
        '`@pytest.mark.istio_task("traffic-management/<page>", "<title>")` runs the task with the manifests and the',
        "`kubectl` commands the page gives (pods in their own network namespaces, unless the test says otherwise)",
        "and asserts what the page says you will see.",
        "",
    ]
    used: set[str] = set()
    for heading, belongs in groups:
        entries = tuple(e for e in TASKS if belongs(e.path))
        group_marks = [m for m in tasks if belongs(m.path) and m.path not in used]
        used.update(m.path for m in group_marks)
        lines += [f"## {heading}", "", *_rows(entries, group_marks, TASKS_URL), ""]
    rest = [m for m in tasks if m.path not in used]
    if rest:
        lines += ["## Other tasks", "", *_rows((), rest, TASKS_URL), ""]
    lines += ["## Samples", "", *_rows(SAMPLES, samples, SAMPLES_URL), ""]
    lines += _not_programmed()
    return "\n".join(lines)


# A DestinationRule's traffic policy appears at four places; its gaps are listed once, under this name.
_POLICY_PLACES = ("spec.subsets[].trafficPolicy.portLevelSettings[].", "spec.subsets[].trafficPolicy.",
                  "spec.trafficPolicy.portLevelSettings[].", "spec.trafficPolicy.")
_POLICY = "<policy>."


def _not_programmed() -> list[str]:
    """The fields `sluice.validation.istio.programmed` says Sluice stores but does not program yet."""
    from sluice.resources.schema import schema_for
    from sluice.validation.istio import programmed

    lines = ["## Istio fields stored but not programmed yet", "",
             "Sluice accepts these (kubectl prints a `Warning:` for each one an object sets, and `sluice analyze`",
             "lists it as SLU0001) but does not program them into Envoy yet; from the table in",
             "`src/sluice/validation/istio/programmed.py`. `<policy>` is each of a DestinationRule's traffic policies:",
             "`spec.trafficPolicy`, `spec.subsets[].trafficPolicy` and their `portLevelSettings[]`.", "",
             "| Kind | Field |", "|---|---|"]
    for kind in programmed.PROGRAMMED:
        spec = schema_for("networking.istio.io", kind)["properties"]["spec"]
        seen: list[str] = []
        for gap in programmed.gaps(kind, spec):
            for place in _POLICY_PLACES:
                if gap.startswith(place):
                    gap = _POLICY + gap.removeprefix(place)
                    break
            if gap not in seen:
                seen.append(gap)
        lines += [f"| {kind} | `{gap}` |" for gap in seen]
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not what the tests say")
    args = parser.parse_args(argv)
    text = render(collect())
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `make docs` (python scripts/istio_tasks.py)", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
