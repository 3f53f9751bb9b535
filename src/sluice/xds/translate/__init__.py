"""Pure translation of mesh config (Kubernetes + Istio objects) into Envoy xDS resources.

The ADS server builds one `PushContext` per push and calls `generate(proxy, push)` for
each proxy it pushes to; nothing here does I/O or reads globals. One builder module per xDS type, as in
Istio's pilot/pkg/networking/core: `clusters`, `endpoints`, `listeners`, `routes` (+ `httproute` for
VirtualService rules, `traffic_policy` for DestinationRules and `cluster_tls` for their TLS origination;
`capture` for the sidecar listeners of netns mode, `tcp_routes` for VirtualService tcp/tls rules,
`gateway_tcp` for a gateway's TCP and TLS-passthrough servers, `network_filters` for the HCM and TCP proxy
they all end in). Resources shared by many proxies are built
once per push and memoised on the context; small parsed messages are also memoised by content across pushes
(`protos.cached_message`, a cache: the same content gives the same, read-only message). `scope` says which
proxies and types a change can affect.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from google.protobuf.message import Message

from . import capture, clusters, endpoints, gateway, listeners, routes
from .model import (
    ADS_ORDER,
    TYPE_CLUSTER,
    TYPE_ENDPOINT,
    TYPE_LISTENER,
    TYPE_ROUTE,
    MeshOptions,
    NetworkMode,
    Proxy,
    Resources,
    proxy_from_pod,
)
from .protos import cached_message, message
from .push_context import PushContext
from .spec import Obj

__all__ = [
    "TYPE_LISTENER", "TYPE_ROUTE", "TYPE_CLUSTER", "TYPE_ENDPOINT", "ADS_ORDER", "Resources", "MeshOptions", "NetworkMode",
    "Proxy", "proxy_from_pod", "PushContext", "generate",
]


def _messages(type_url: str, items: Iterable[Obj]) -> dict[str, Message]:
    key = "cluster_name" if type_url == TYPE_ENDPOINT else "name"
    # Route configurations are not looked up by content: one can be megabytes (a VirtualService of thousands of
    # routes), and hashing it is one long C call holding the GIL the API's loop needs; they are built once per
    # push and namespace already. Listeners, clusters and endpoints are many small ones, rebuilt per proxy.
    parse = message if type_url == TYPE_ROUTE else cached_message
    return {str(item[key]): parse(type_url, item) for item in items}


def _clusters(proxy: Proxy, push: PushContext) -> dict[str, Message]:
    sidecar = proxy.type == "sidecar"  # a rule's credentialName reaches sidecars only through a workloadSelector
    scope = push.scope_of(proxy)
    shared = push.memo((TYPE_CLUSTER, proxy.namespace, sidecar, push.rules_selecting(proxy.namespace, proxy.labels),
                        scope.key if scope else ""),
                       lambda: _messages(TYPE_CLUSTER,
                                         clusters.shared_clusters(push, proxy.namespace, proxy.labels, sidecar,
                                                                  scope)))
    own = _messages(TYPE_CLUSTER, clusters.proxy_clusters(proxy, push))
    return {**own, **shared}


def _endpoints(proxy: Proxy, push: PushContext) -> dict[str, Message]:
    scope = push.scope_of(proxy)
    return push.memo((TYPE_ENDPOINT, proxy.namespace, push.rules_selecting(proxy.namespace, proxy.labels),
                      scope.key if scope else ""),
                     lambda: _messages(TYPE_ENDPOINT, endpoints.build_endpoints(push, proxy.namespace, proxy.labels,
                                                                                scope)))


def _listeners(proxy: Proxy, push: PushContext) -> dict[str, Message]:
    if proxy.type == "sidecar" and push.options.network == "netns":
        # A netns sidecar's outbound listeners are the same for its namespace and labels: build them once.
        key = (TYPE_LISTENER, proxy.namespace, tuple(sorted(proxy.labels.items())))
        shared = push.memo(key, lambda: _messages(TYPE_LISTENER, capture.outbound_listeners(proxy, push)))
        own = {n: m for n, m in shared.items() if not capture.own_listener(proxy, n)}
        return {**own, **_messages(TYPE_LISTENER, [capture.inbound_listener(proxy, push)])}
    return _messages(TYPE_LISTENER, listeners.build_listeners(proxy, push))


def _routes(proxy: Proxy, push: PushContext) -> dict[str, Message]:
    if proxy.type == "router":
        return _messages(TYPE_ROUTE, gateway.route_configs(proxy, push))
    # The sidecar table depends on the namespace and, through sourceLabels, on the labels only.
    key = (TYPE_ROUTE, proxy.namespace, tuple(sorted(proxy.labels.items())))
    if push.options.network == "netns":
        return push.memo(key, lambda: _messages(TYPE_ROUTE, routes.sidecar_port_route_configs(proxy, push)))
    return push.memo(key, lambda: _messages(TYPE_ROUTE, [routes.sidecar_route_config(proxy, push)]))


def generate(proxy: Proxy, push: PushContext, types: Collection[str] = ADS_ORDER) -> Resources:
    """Every resource of the requested types this proxy should hold: type URL → name → message.

    The inner dicts may be shared with other proxies of the same push: treat them as read-only.
    """
    builders = {TYPE_CLUSTER: _clusters, TYPE_ENDPOINT: _endpoints, TYPE_LISTENER: _listeners, TYPE_ROUTE: _routes}
    return {t: builders[t](proxy, push) for t in ADS_ORDER if t in types}
