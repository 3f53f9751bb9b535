"""The table of served resource kinds.

Everything that differs per kind (URL names, scope, short names, which patch types it accepts, which
subresources it has) lives here, so the API server, discovery, OpenAPI and the CLI read one table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ResourceType", "KINDS", "ISTIO_GROUP", "ISTIO_VERSIONS", "ARGO_GROUP", "by_plural", "by_kind", "lookup"]

ISTIO_GROUP = "networking.istio.io"
# v1 first: it is the preferred version; one stored object is served at every version.
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
ARGO_GROUP = "argoproj.io"  # Argo Rollouts' CRDs, served at v1alpha1 only
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    builtin: bool = True  # built-in kinds accept strategic merge patch; CRD kinds (Istio, Argo) answer 415
    subresources: tuple[str, ...] = ()  # "status", "scale", "log", "exec", "attach", "portforward"
    verbs: tuple[str, ...] = ALL_VERBS
    has_spec: bool = True  # generation is bumped on spec changes only

    @property
    def preferred_version(self) -> str:
        return self.versions[0]

    @property
    def qualified(self) -> str:
        """`virtualservices.networking.istio.io`, `deployments.apps`, `pods`: kubectl's name in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def key(self) -> str:
        """Storage key: one per kind, independent of the served version."""
        return self.qualified

    def api_version(self, version: str | None = None) -> str:
        v = version or self.preferred_version
        return f"{self.group}/{v}" if self.group else v

    @property
    def kind_qualified(self) -> str:
        """`VirtualService.networking.istio.io`: the name used in 422 Invalid messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


def _istio(kind: str, plural: str, short: str | None) -> ResourceType:
    return ResourceType(
        group=ISTIO_GROUP,
        versions=ISTIO_VERSIONS,
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        short_names=(short,) if short else (),
        categories=("istio-io", "networking-istio-io"),
        builtin=False,
        subresources=("status",),
    )


def _argo(kind: str, plural: str, short: str, *, namespaced: bool = True,
          subresources: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(
        group=ARGO_GROUP,
        versions=("v1alpha1",),
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=(short,),
        builtin=False,
        subresources=subresources,
    )


KINDS: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "Namespace", "namespaces", "namespace", namespaced=False, short_names=("ns",),
                 subresources=("status",), verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceType("", ("v1",), "Pod", "pods", "pod", short_names=("po",), categories=("all",),
                 subresources=("status", "log", "exec", "attach", "portforward")),
    ResourceType("", ("v1",), "Service", "services", "service", short_names=("svc",), categories=("all",),
                 subresources=("status",)),
    ResourceType("", ("v1",), "Endpoints", "endpoints", "endpoints", short_names=("ep",), has_spec=False),
    ResourceType("", ("v1",), "ServiceAccount", "serviceaccounts", "serviceaccount", short_names=("sa",),
                 has_spec=False),
    ResourceType("", ("v1",), "ConfigMap", "configmaps", "configmap", short_names=("cm",), has_spec=False),
    ResourceType("", ("v1",), "Secret", "secrets", "secret", has_spec=False),
    ResourceType("", ("v1",), "Event", "events", "event", short_names=("ev",), has_spec=False),
    ResourceType("apps", ("v1",), "Deployment", "deployments", "deployment", short_names=("deploy",),
                 categories=("all",), subresources=("status", "scale")),
    ResourceType("apps", ("v1",), "ReplicaSet", "replicasets", "replicaset", short_names=("rs",),
                 categories=("all",), subresources=("status", "scale")),
    _istio("VirtualService", "virtualservices", "vs"),
    _istio("DestinationRule", "destinationrules", "dr"),
    _istio("Gateway", "gateways", "gw"),
    _istio("ServiceEntry", "serviceentries", "se"),
    _istio("Sidecar", "sidecars", None),  # Istio's CRD has no short name
    _argo("Rollout", "rollouts", "ro", subresources=("status", "scale")),
    _argo("AnalysisTemplate", "analysistemplates", "at"),
    _argo("ClusterAnalysisTemplate", "clusteranalysistemplates", "cat", namespaced=False),
    _argo("AnalysisRun", "analysisruns", "ar"),  # no status subresource: Argo's controller writes the object
    _argo("Experiment", "experiments", "exp"),
)

_BY_GROUP_PLURAL = {(k.group, k.plural): k for k in KINDS}
_BY_GROUP_KIND = {(k.group, k.kind): k for k in KINDS}


def by_plural(group: str, plural: str) -> ResourceType | None:
    return _BY_GROUP_PLURAL.get((group, plural))


def by_kind(group: str, kind: str) -> ResourceType | None:
    return _BY_GROUP_KIND.get((group, kind))


def lookup(name: str) -> ResourceType | None:
    """Resolve what a user types (`vs`, `virtualservice`, `VirtualService`, `virtualservices.networking.istio.io`,
    `deploy`, `deployments.apps`) to a kind, the way kubectl's RESTMapper and shortcut expander do."""
    n = name.strip()
    group = None
    if "." in n:
        n, _, group = n.partition(".")
    low = n.lower()
    for k in KINDS:
        if group is not None and k.group != group and not k.group.startswith(group):
            continue
        if low in (k.plural, k.singular, k.kind.lower()) or low in k.short_names:
            return k
    return None
