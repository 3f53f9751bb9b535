"""The user story's VirtualService (reviews 90:10 between v2 and v3), verbatim, for every test that needs it."""

from __future__ import annotations

from pathlib import Path

STORY_VS = (Path(__file__).resolve().parent / "data" / "reviews-90-10.yaml").read_text()


def with_weights(v2: int, v3: int) -> str:
    """The story's VirtualService with other weights, edited as the story edits it."""
    template = STORY_VS.replace("weight: 90", "weight: @V2@").replace("weight: 10", "weight: @V3@")
    return template.replace("@V2@", str(v2)).replace("@V3@", str(v3))
