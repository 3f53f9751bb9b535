"""Sluice's embedded time-series database (see `db.TSDB`): implements `sluice.metrics.series.Storage`."""

from __future__ import annotations

from sluice.metrics.tsdb.db import DEFAULT_RETENTION_MS, TSDB, TSDBStats

__all__ = ["TSDB", "TSDBStats", "DEFAULT_RETENTION_MS"]
