"""The weight edits `sluice rollouts shift` makes to a user's VirtualService (pure functions)."""

from __future__ import annotations

import pytest

from sluice.rollouts.shift import ShiftError, current_weight, host_names, parse_steps, with_weight

HOSTS = host_names("reviews", "tutorial")


def _dest(subset: str, weight: int | None = None, host: str = "reviews") -> dict[str, object]:
    d: dict[str, object] = {"destination": {"host": host, "subset": subset, "port": {"number": 9080}}}
    if weight is not None:
        d["weight"] = weight
    return d


def test_story_route_moves_weights_and_keeps_everything_else() -> None:
    http = [{"match": [{"headers": {"end-user": {"exact": "jason"}}}], "route": [_dest("v1")]},
            {"retries": {"attempts": 2}, "route": [_dest("v2", 90), _dest("v3", 10)]}]
    out = with_weight(http, HOSTS, "v2", "v3", 20)
    assert out[0] == http[0]  # a route to another subset is the user's own: untouched
    assert out[1]["retries"] == {"attempts": 2}
    assert out[1]["route"] == [_dest("v2", 80), _dest("v3", 20)]
    assert http[1]["route"] == [_dest("v2", 90), _dest("v3", 10)]  # the input is not modified
    assert current_weight(out, HOSTS, "v2", "v3") == 20


def test_route_to_the_old_subset_alone_gains_the_new_one() -> None:
    http = [{"route": [_dest("v2", host="reviews.tutorial.svc.cluster.local")]}]
    assert current_weight(http, HOSTS, "v2", "v3") == 0
    out = with_weight(http, HOSTS, "v2", "v3", 10)
    assert [(d["destination"]["subset"], d["weight"]) for d in out[0]["route"]] == [("v2", 90), ("v3", 10)]
    assert out[0]["route"][1]["destination"]["host"] == "reviews.tutorial.svc.cluster.local"


def test_no_managed_route_is_an_error() -> None:
    with pytest.raises(ShiftError, match="no HTTP route sends only to subsets 'v2'/'v3'"):
        with_weight([{"route": [_dest("v1")]}], HOSTS, "v2", "v3", 10)
    assert current_weight([{"route": [_dest("v2", 50), _dest("v1", 50)]}], HOSTS, "v2", "v3") is None


@pytest.mark.parametrize("text", ["", "10,5,100", "10,20", "0,100", "10,x,100", "10,10,100", "50,150"])
def test_bad_steps_are_refused(text: str) -> None:
    with pytest.raises(ShiftError, match="invalid --steps"):
        parse_steps(text)


def test_story_steps() -> None:
    assert parse_steps("10,20,30,100") == [10, 20, 30, 100]
