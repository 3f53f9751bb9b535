"""The xDS resource types Sluice serves, by type URL, and the order ADS delivers them in (defined once, for the
cache that serves them and the translation that builds them)."""

from __future__ import annotations

__all__ = ["CLUSTER", "ENDPOINT", "LISTENER", "ROUTE", "ADS_ORDER"]

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

# The delivery order: a cluster before the endpoints that warm it, a listener before the routes it names, so
# Envoy never warms a resource whose dependency is missing.
ADS_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
