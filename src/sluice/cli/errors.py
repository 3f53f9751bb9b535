"""Turning failures into kubectl's messages (`error: …`, `Error from server (Reason): …`, 422 cause lists)."""

from __future__ import annotations

from sluice.client.errors import ApiError

__all__ = ["CliError", "format_api_error", "invalid_causes"]


class CliError(Exception):
    """A user-facing failure: printed as `error: <message>` (unless `raw`), exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1, *, raw: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.raw = raw


def invalid_causes(err: ApiError) -> list[str]:
    """`field: message` per cause, duplicates removed (kubectl's statusCausesToAggrError)."""
    seen: list[str] = []
    for c in err.causes:
        field = str(c.get("field") or "")
        msg = f"{field}: {c.get('message') or ''}"
        if msg not in seen:
            seen.append(msg)
    return seen


def format_api_error(err: ApiError, *, source: str | None = None, action: str = "creating") -> str:
    """The text kubectl prints for an API error (without a trailing newline).

    `source` is the manifest file name: apply and create prefix non-422 messages with
    `error when <action> "<source>": ` (kubectl's AddSourceToErr)."""
    if err.reason == "Invalid" or (err.code == 422 and not err.reason):
        details = err.status.get("details")
        if not isinstance(details, dict):
            return f"The request is invalid: {err.message}" if err.message else "The request is invalid"
        kind, name = str(details.get("kind") or ""), str(details.get("name") or "")
        head = f'The {kind} "{name}" is invalid' if kind or name else "The request is invalid"
        if not (kind or name) and err.message:
            head += f": {err.message}"
        causes = invalid_causes(err)
        if not causes:
            return head
        if len(causes) == 1:
            return f"{head}: {causes[0]}"
        # kubectl's MultilineError: "<head>: " on its own line (trailing space kept), then "* cause" lines.
        return f"{head}: \n" + "\n".join(f"* {c}" for c in causes)
    message = err.message
    if source:
        message = f'error when {action} "{source}": {message}'
    reason = err.reason
    if not reason or reason == "Unknown":
        return f"Error from server: {message}"
    return f"Error from server ({reason}): {message}"
