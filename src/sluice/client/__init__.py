"""A small typed Kubernetes REST client used by the `sluice` CLI (sync, stdlib `http.client` + `ssl`)."""

from __future__ import annotations

from sluice.client.api import ApiClient, WatchEvent
from sluice.client.discovery import Discovery, ResourceInfo
from sluice.client.errors import ApiError, ClientError, ConnectionFailed, ResourceTypeNotFound
from sluice.client.kubeconfig import Kubeconfig, RestConfig, load_kubeconfig

__all__ = [
    "ApiClient",
    "ApiError",
    "ClientError",
    "ConnectionFailed",
    "Discovery",
    "Kubeconfig",
    "ResourceInfo",
    "ResourceTypeNotFound",
    "RestConfig",
    "WatchEvent",
    "load_kubeconfig",
]
