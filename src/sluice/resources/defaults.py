"""Server-side defaulting, as kube-apiserver does it, so clients see complete objects.

Called by the API registry on create and update. Pure: returns nothing, fills in missing fields in place
on an object the registry already owns (a fresh copy of the request body).
"""

from __future__ import annotations

from sluice.objects import Obj

__all__ = ["apply_defaults"]



def _pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            image = str(c.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy", "Always" if latest and "@" not in tag else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                pr = c.get(probe)
                if isinstance(pr, dict):
                    pr.setdefault("timeoutSeconds", 1)
                    pr.setdefault("periodSeconds", 10)
                    pr.setdefault("successThreshold", 1)
                    pr.setdefault("failureThreshold", 3)
                    _http_get(pr)
            lifecycle = c.get("lifecycle")
            for hook in ("postStart", "preStop"):
                if isinstance(lifecycle, dict) and isinstance(lifecycle.get(hook), dict):
                    _http_get(lifecycle[hook])


def _http_get(handler: Obj) -> None:
    """SetDefaults_HTTPGetAction, for a probe's or a lifecycle handler's."""
    if isinstance(handler.get("httpGet"), dict):
        handler["httpGet"].setdefault("path", "/")
        handler["httpGet"].setdefault("scheme", "HTTP")


def _deployment(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            if isinstance(ru, dict):
                ru.setdefault("maxSurge", "25%")
                ru.setdefault("maxUnavailable", "25%")
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        tmpl.setdefault("metadata", {})
        if isinstance(tmpl.get("spec"), dict):
            _pod_spec(tmpl["spec"])


def _replicaset(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        tmpl.setdefault("metadata", {})
        if isinstance(tmpl.get("spec"), dict):
            _pod_spec(tmpl["spec"])


def _service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])


def _namespace(obj: Obj) -> None:
    obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    obj.setdefault("status", {"phase": "Active"})


def _pod(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        _pod_spec(spec)
    obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})


def _secret(obj: Obj) -> None:
    from sluice.resources.secrets import OPAQUE, fold_string_data

    fold_string_data(obj)
    if not obj.get("type"):
        obj["type"] = OPAQUE


_DEFAULTERS = {
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "Service"): _service,
    ("", "Namespace"): _namespace,
    ("", "Pod"): _pod,
    ("", "Secret"): _secret,
}


def apply_defaults(group: str, kind: str, obj: Obj) -> None:
    fn = _DEFAULTERS.get((group, kind))
    if fn is not None:
        fn(obj)
