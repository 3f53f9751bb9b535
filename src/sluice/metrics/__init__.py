"""Metrics: the time-series store, the PromQL engine and the Prometheus-compatible HTTP API."""
