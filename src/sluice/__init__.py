"""Sluice: an Istio-compatible service mesh that runs on one machine."""

__version__ = "0.1.0"
