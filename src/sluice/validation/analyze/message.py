"""istioctl-analyze messages: the record, its one-line rendering, ordering, and the run's trailer line.

Built by the analyzers in this package; printed by `sluice analyze`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Message", "Level", "format_message", "summary_line", "analyze_target", "sort_messages",
           "exit_code", "MORE_INFO", "EXIT_FOUND_ISSUES"]

Level = Literal["Error", "Warning", "Info"]
_LEVEL_ORDER = {"Error": 0, "Warning": 1, "Info": 2}
MORE_INFO = ("See https://istio.io/latest/docs/reference/config/analysis for more information about causes "
             "and resolutions.")
EXIT_FOUND_ISSUES = 79  # istioctl's exit status when analyzers report errors


@dataclass(frozen=True)
class Message:
    code: str
    level: Level
    kind: str
    namespace: str
    name: str
    text: str
    origin: str | None = None  # `file.yaml:3` when the object came from a file

    @property
    def resource(self) -> str:
        """istioctl's friendly name of the object: `VirtualService tutorial/reviews`."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def format_message(m: Message) -> str:
    """`Error [IST0101] (VirtualService tutorial/reviews file.yaml:3) Referenced host not found: "x"`."""
    where = f"{m.resource} {m.origin}" if m.origin else m.resource
    return f"{m.level} [{m.code}] ({where}) {m.text}"


def sort_messages(messages: Iterable[Message]) -> list[Message]:
    """istioctl's order (level, code, resource, text) with exact duplicates removed."""
    ordered = sorted(messages, key=lambda m: (_LEVEL_ORDER[m.level], m.code, m.resource, format_message(m)))
    out: list[Message] = []
    for m in ordered:
        if not out or format_message(out[-1]) != format_message(m):
            out.append(m)
    return out


def analyze_target(namespace: str | None) -> str:
    """What istioctl says it analyzed: `namespace: tutorial`, or `all namespaces` for None."""
    return "all namespaces" if namespace is None else f"namespace: {namespace}"


def summary_line(messages: Iterable[Message], target: str) -> str:
    """The trailer istioctl writes after the messages; `target` is e.g. `analyze_target("tutorial")`.

    No messages: the ✔ line. Any error: cobra's `Error: Analyzers found issues …` line (the run then
    exits with EXIT_FOUND_ISSUES; MORE_INFO follows it). Warnings/info only: nothing ("").
    """
    msgs = list(messages)
    if not msgs:
        return f"\u2714 No validation issues found when analyzing {target}."
    if any(m.level == "Error" for m in msgs):
        return f"Error: Analyzers found issues when analyzing {target}."
    return ""


def exit_code(messages: Iterable[Message]) -> int:
    return EXIT_FOUND_ISSUES if any(m.level == "Error" for m in messages) else 0
