"""Resource discovery and name resolution (`vs`, `deployments.apps`, kinds from manifests), as kubectl's RESTMapper."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluice.client.errors import ApiError, ClientError, ResourceTypeNotFound
from sluice.client.rest import RestClient
from sluice.resources import kinds

__all__ = ["Discovery", "ResourceInfo", "split_api_version"]


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` → (`networking.istio.io`, `v1`); `v1` → (``, `v1`)."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass(frozen=True)
class ResourceInfo:
    """One servable resource at one group/version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = field(default_factory=frozenset)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`virtualservices.networking.istio.io`: the resource as named in API messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """`virtualservice.networking.istio.io`: the prefix kubectl prints (`…/reviews created`)."""
        low = self.kind.lower()
        return f"{low}.{self.group}" if self.group else low

    def collection_path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        return f"{base}/{self.plural}"

    def object_path(self, namespace: str | None, name: str, subresource: str | None = None) -> str:
        path = f"{self.collection_path(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path

    @classmethod
    def from_kind(cls, k: kinds.ResourceType, version: str | None = None) -> ResourceInfo:
        return cls(
            group=k.group,
            version=version or k.preferred_version,
            plural=k.plural,
            singular=k.singular,
            kind=k.kind,
            namespaced=k.namespaced,
            short_names=k.short_names,
            verbs=k.verbs,
            categories=k.categories,
            subresources=frozenset(k.subresources),
        )


class Discovery:
    """Lazily loads `/api`, `/apis` and the per-group-version resource lists (legacy discovery)."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest
        self._groups: list[tuple[str, list[str], str]] | None = None  # (group, versions, preferred)
        self._resources: dict[tuple[str, str], list[ResourceInfo]] = {}
        self._failed = False

    def groups(self) -> list[tuple[str, list[str], str]]:
        if self._groups is None:
            groups: list[tuple[str, list[str], str]] = []
            try:
                core = self._rest.json("GET", "/api")
                versions = [str(v) for v in core.get("versions") or []]
                if versions:
                    groups.append(("", versions, versions[0]))
                for g in self._rest.json("GET", "/apis").get("groups") or []:
                    vs = [str(v.get("version")) for v in g.get("versions") or []]
                    pref = str((g.get("preferredVersion") or {}).get("version") or (vs[0] if vs else ""))
                    groups.append((str(g.get("name")), vs, pref))
            except ApiError:
                # A server without discovery: fall back to the built-in kind table.
                self._failed = True
            self._groups = groups
        return self._groups

    def resources(self, group: str, version: str) -> list[ResourceInfo]:
        key = (group, version)
        if key not in self._resources:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = self._rest.json("GET", path)
            except ApiError as e:
                if e.code != 404:
                    raise
                doc = {}
            self._resources[key] = _parse_resource_list(group, version, doc.get("resources") or [])
        return self._resources[key]

    def preferred(self) -> list[ResourceInfo]:
        """Every top-level resource at its group's preferred version, in discovery priority order."""
        out: list[ResourceInfo] = []
        for group, _versions, pref in self.groups():
            out.extend(self.resources(group, pref))
        return out

    def _fallback(self, name: str) -> ResourceInfo | None:
        k = kinds.lookup(name)
        return ResourceInfo.from_kind(k) if k else None

    def resolve(self, name: str) -> ResourceInfo:
        """Resolve what a user typed: `vs`, `virtualservice`, `VirtualService`, `virtualservices.networking.istio.io`,
        `virtualservices.v1beta1.networking.istio.io`, `deploy`, `deployments.apps`."""
        if not name:
            raise ClientError("resource type must not be empty")
        resource, _, rest = name.partition(".")
        candidates = self.preferred()
        if not candidates and (self._failed or not self.groups()):
            found = self._fallback(name)
            if found:
                return found
            raise ResourceTypeNotFound(name)
        # A fully qualified `resource.version.group` names one version explicitly.
        if rest:
            version, _, group = rest.partition(".")
            for g, versions, _pref in self.groups():
                if g == group and version in versions:
                    hit = _match(self.resources(g, version), resource)
                    if hit:
                        return hit
        low = resource.lower()
        pool = [r for r in candidates if not rest or r.group == rest or r.group.startswith(rest + ".")]
        if rest and not pool:
            pool = [r for r in candidates if r.group.startswith(rest)]
        hit = _match(pool, resource)
        if hit is None:
            for r in pool:
                if low in r.short_names:
                    hit = r
                    break
        if hit is None:
            raise ResourceTypeNotFound(name)
        return hit

    def category(self, name: str) -> list[ResourceInfo]:
        """Resources in a category (`all`, `istio-io`), in discovery order, as kubectl's category expander."""
        if "." in name:
            return []
        return [r for r in self.preferred() if name in r.categories]

    def for_kind(self, api_version: str, kind: str) -> ResourceInfo:
        """The resource serving `kind` at `api_version` (for manifests)."""
        group, version = split_api_version(api_version)
        groups = self.groups()
        if not groups:
            k = kinds.by_kind(group, kind)
            if k and version in k.versions:
                return ResourceInfo.from_kind(k, version)
        elif any(g == group and version in vs for g, vs, _ in groups):
            for r in self.resources(group, version):
                if r.kind == kind:
                    return r
        raise ClientError(f'no matches for kind "{kind}" in version "{api_version}"')

    def scale_supported(self, info: ResourceInfo) -> bool:
        return "scale" in info.subresources


def _match(pool: list[ResourceInfo], typed: str) -> ResourceInfo | None:
    low = typed.lower()
    for r in pool:
        if low in (r.plural, r.singular, r.kind.lower()):
            return r
    return None


def _parse_resource_list(group: str, version: str, raw: list[Any]) -> list[ResourceInfo]:
    subs: dict[str, set[str]] = {}
    tops: list[dict[str, Any]] = []
    for r in raw:
        if not isinstance(r, dict):
            continue
        name = str(r.get("name") or "")
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, set()).add(sub)
        elif name:
            tops.append(r)
    out = []
    for r in tops:
        name = str(r["name"])
        kind = str(r.get("kind") or "")
        out.append(
            ResourceInfo(
                group=group,
                version=version,
                plural=name,
                singular=str(r.get("singularName") or kind.lower()),
                kind=kind,
                namespaced=bool(r.get("namespaced")),
                short_names=tuple(str(s) for s in r.get("shortNames") or []),
                verbs=tuple(str(v) for v in r.get("verbs") or []),
                categories=tuple(str(c) for c in r.get("categories") or []),
                subresources=frozenset(subs.get(name, set())),
            )
        )
    return out
