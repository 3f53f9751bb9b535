"""The in-process kubelet every runtime test module starts from (`harness.start_cluster` with its defaults);
a module that needs other kubelet options defines its own `cluster`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.runtime.harness import Cluster, start_cluster, stop_cluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = await start_cluster(tmp_path)
    yield c
    await stop_cluster(c)
