"""fortio's flags: Go `flag` rules (`-f v`, `-f=v`, `--f v`; a boolean flag takes no separate value; flags stop at
the first argument that is not one). Used by the command line (`cli`) and the server (`serve`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sluice.samples.gotime import parse_duration

__all__ = ["Flags", "parse", "UsageError", "BOOLS", "VALUES", "COMMANDS", "SUPPORTED"]

BOOLS = frozenset({
    "quiet", "keepalive", "k", "https-insecure", "stdclient", "h2", "http1.0", "curl", "curl-stdout-headers",
    "log-errors", "a", "allow-initial-errors", "jitter", "uniform", "nocatchup", "grpc", "ping", "health",
    "grpc-compression", "compression", "halfclose", "L", "sequential-warmup", "no-reresolve", "calc-qps",
    "udp-async", "mtls", "pprof", "stream", "nc-dont-stop-on-eof", "multi-serial-mode", "multi-mirror-origin",
    "proxy-all-headers", "h", "help"})
VALUES = frozenset({
    "loglevel", "H", "payload", "payload-size", "payload-file", "content-type", "X", "timeout", "qps", "c", "t", "n",
    "p", "r", "offset", "json", "labels", "data-dir", "resolve", "user", "abort-on", "gomaxprocs", "s",
    "http-port", "grpc-port", "tcp-port", "udp-port", "redirect-port", "echo-debug-path", "ui-path", "config-dir",
    "echo-server-default-params", "max-echo-delay", "healthservice", "maxpayloadsizekb", "sync", "sync-interval",
    "base-url", "static-dir", "profile", "runid", "connection-reuse", "cert", "key", "cacert", "unix-socket",
    "grpc-ping-delay", "grpc-max-streams", "grpc-method", "access-log-file", "access-log-format", "init",
    "httpbufferkb", "httpccch", "resolve-ip-type", "dns-method", "server-idle-timeout", "P", "M", "udp-timeout",
    "config", "logger-force-color", "logger-no-color"})
COMMANDS = ("load", "server", "curl", "version", "buildinfo", "help", "report", "redirect", "tcp-echo",
            "udp-echo", "proxies", "grpcping", "nc", "script")
SUPPORTED = ("load", "server", "curl", "version", "buildinfo", "tcp-echo", "udp-echo", "redirect", "help")


class UsageError(Exception):
    pass


@dataclass
class Flags:
    command: str
    values: dict[str, str] = field(default_factory=dict)
    multi: dict[str, list[str]] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def get(self, name: str, default: str) -> str:
        return self.values.get(name, default)

    def boolean(self, name: str, default: bool = False) -> bool:
        raw = self.values.get(name)
        return default if raw is None else raw.lower() in ("1", "t", "true")

    def number(self, name: str, default: float) -> float:
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise UsageError(f'invalid value "{raw}" for flag -{name}: parse error') from None

    def integer(self, name: str, default: int) -> int:
        raw = self.values.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f'invalid value "{raw}" for flag -{name}: parse error') from None

    def duration(self, name: str, default: float) -> float:
        raw = self.values.get(name)
        if raw is None:
            return default
        value = parse_duration(raw)
        if value is None:
            raise UsageError(f'invalid value "{raw}" for flag -{name}: parse error')
        return value


def parse(argv: list[str]) -> Flags:
    if not argv:
        raise UsageError("Missing command argument")
    command, rest = argv[0], argv[1:]
    if command.startswith("-"):
        raise UsageError(f"Missing command argument (got flag {command} first)")
    flags = Flags(command)
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if name in BOOLS:
            flags.values[name] = value if eq else "true"
            if eq and value.lower() not in ("1", "0", "t", "f", "true", "false"):
                raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')
        elif name in VALUES:
            if not eq:
                if i + 1 >= len(rest):
                    raise UsageError(f"flag needs an argument: -{name}")
                i += 1
                value = rest[i]
            flags.values[name] = value
            flags.multi.setdefault(name, []).append(value)
        else:
            raise UsageError(f"flag provided but not defined: -{name}")
        i += 1
    flags.args = rest[i:]
    return flags
