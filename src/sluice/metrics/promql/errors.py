"""PromQL errors: `ParseError` (with a position, rendered like Prometheus's `1:5: parse error: …`) and
`EvalError` for failures during evaluation."""

from __future__ import annotations

__all__ = ["PromQLError", "ParseError", "EvalError", "QueryTimeout", "QueryCanceled"]


class PromQLError(Exception):
    """Base class of every error the engine raises on bad queries."""


class ParseError(PromQLError):
    def __init__(self, msg: str, position: int, query: str = "", end: int | None = None) -> None:
        self.msg = msg
        self.position = position
        self.end = position if end is None else end
        self.query = query
        super().__init__(str(self))

    @property
    def line_col(self) -> tuple[int, int]:
        before = self.query[: self.position]
        line = before.count("\n") + 1
        col = self.position - (before.rfind("\n") if "\n" in before else -1)
        return line, col

    def __str__(self) -> str:
        line, col = self.line_col
        return f"{line}:{col}: parse error: {self.msg}"


class EvalError(PromQLError):
    """A query that parsed but cannot be evaluated (type of result, matching errors, bad arguments)."""


class QueryTimeout(EvalError):
    """The query ran past its deadline (Prometheus's `query.timeout`, or the request's `timeout`)."""

    def __init__(self) -> None:
        super().__init__("query timed out in expression evaluation")


class QueryCanceled(EvalError):
    """The query was cancelled from outside (its client went away, or the daemon is stopping)."""

    def __init__(self) -> None:
        super().__init__("query was canceled in expression evaluation")
