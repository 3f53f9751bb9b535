"""fortio.org/log as fortio uses it: levels, `-loglevel`, JSON lines on stderr when it is not a terminal
(`{"ts":…,"level":"warn","msg":"Non ok http code","code":503,…}`), short text lines on a terminal."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

__all__ = ["Logger", "LEVELS", "parse_level", "DEBUG", "VERBOSE", "INFO", "WARNING", "ERROR", "CRITICAL"]

LEVELS = ("Debug", "Verbose", "Info", "Warning", "Error", "Critical", "Fatal")
_JSON = ("dbug", "trace", "info", "warn", "err", "crit", "fatal")
DEBUG, VERBOSE, INFO, WARNING, ERROR, CRITICAL = range(6)


def parse_level(text: str) -> int:
    """A level name (any case, as `-loglevel` takes it) or its number; ValueError otherwise."""
    for i, name in enumerate(LEVELS[:6]):
        if text.lower() == name.lower() or text == str(i):
            return i
    raise ValueError(f'invalid log level "{text}": want one of {", ".join(LEVELS[:6])}')


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)


class Logger:
    def __init__(self, stream: TextIO | None = None, level: int = INFO, json_mode: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.level = level
        self.json = (not self.stream.isatty()) if json_mode is None else json_mode

    def enabled(self, level: int) -> bool:
        return level >= self.level

    def set_level(self, level: int) -> None:
        if level != self.level:
            self.log(INFO, f"Log level is now {level} {LEVELS[level]} (was {self.level} {LEVELS[self.level]})")
            self.level = level

    def log(self, level: int, msg: str, **attrs: Any) -> None:
        if not self.enabled(level):
            return
        if self.json:
            extra = "".join(f",{json.dumps(k)}:{_value(v)}" for k, v in attrs.items())
            line = f'{{"ts":{time.time():.6f},"level":"{_JSON[level]}","msg":{json.dumps(msg, ensure_ascii=False)}{extra}}}'
        else:
            extra = "".join(f", {k}={v}" for k, v in attrs.items())
            line = f"{time.strftime('%H:%M:%S')} [{LEVELS[level][0]}] {msg}{extra}"
        self.stream.write(line + "\n")
        self.stream.flush()
