"""productpage's `/metrics`: the `request_result` counter the original exports with prometheus_client.

Labelled by `destination_app` (details, reviews, ratings) and `response_code` (the upstream status, or 500
when none arrived), rendered in the Prometheus text format with prometheus_client's `_total`/`_created` pair.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["RequestResults", "format_float"]


def format_float(value: float) -> str:
    """Numbers the way prometheus_client prints them (`1.0`, `1.7245e+09`)."""
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


@dataclass
class RequestResults:
    """The counter: (destination_app, response_code) → (count, created timestamp)."""

    counts: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def inc(self, destination_app: str, response_code: int) -> None:
        key = (destination_app, str(response_code))
        entry = self.counts.get(key)
        if entry is None:
            self.counts[key] = [1.0, time.time()]
        else:
            entry[0] += 1.0

    def value(self, destination_app: str, response_code: int) -> float:
        entry = self.counts.get((destination_app, str(response_code)))
        return entry[0] if entry else 0.0

    def exposition(self) -> str:
        lines = ["# HELP request_result_total Results of requests", "# TYPE request_result_total counter"]
        for (app, code), (count, _) in self.counts.items():
            lines.append(f'request_result_total{{destination_app="{app}",response_code="{code}"}} '
                         f"{format_float(count)}")
        lines += ["# HELP request_result_created Results of requests", "# TYPE request_result_created gauge"]
        for (app, code), (_, created) in self.counts.items():
            lines.append(f'request_result_created{{destination_app="{app}",response_code="{code}"}} '
                         f"{format_float(created)}")
        return "\n".join(lines) + "\n"
