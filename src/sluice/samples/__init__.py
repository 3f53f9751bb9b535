"""Sample manifests shipped with sluice (Bookinfo, the user story) and the built-in programs behind Istio's
sample images."""

from __future__ import annotations

from importlib import resources

__all__ = ["sample_path"]


def sample_path(name: str) -> str:
    """The file of a shipped manifest (`sample_path("bookinfo.yaml")`)."""
    return str(resources.files("sluice.samples").joinpath(name))
