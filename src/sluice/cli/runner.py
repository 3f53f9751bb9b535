"""Running the `sluice` click group the way kubectl behaves: its boolean flags, its error messages and exit codes.

`sluice.cli.main` runs its group through this; `sluice demo` runs its `apply` steps through it too, with the
group it was started from (so the demo needs no import of the CLI that imports it).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from sluice.cli.errors import CliError, format_api_error
from sluice.client.errors import ApiError, ClientError, ConnectionFailed

__all__ = ["run_group", "normalise_bool_flags"]


# kubectl's boolean flags accept `--flag=true|false` (pflag); click flags do not, so rewrite them first.
_BOOL_FLAGS_DEFAULT_FALSE = {
    "all", "all-namespaces", "ignore-not-found", "overwrite", "watch", "watch-only", "show-labels", "no-headers",
    "recursive", "follow", "prefix", "timestamps", "previous", "now", "foreground", "raw", "minify", "stdin", "tty",
    "quiet",
}
_BOOL_FLAGS_DEFAULT_TRUE = {"wait"}


def normalise_bool_flags(args: list[str]) -> list[str]:
    out: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            out.extend(args[i:])
            break
        name, eq, value = a.partition("=")
        flag = name[2:] if name.startswith("--") else ""
        if eq and (flag in _BOOL_FLAGS_DEFAULT_FALSE or flag in _BOOL_FLAGS_DEFAULT_TRUE):
            truth = value.lower() in ("1", "t", "true", "y", "yes")
            if value.lower() not in ("1", "t", "true", "y", "yes", "0", "f", "false", "n", "no"):
                out.append(a)  # let click report it
            elif truth:
                out.append(name)
            elif flag in _BOOL_FLAGS_DEFAULT_TRUE:
                out.append(f"--no-{flag}")
            continue
        out.append(a)
    return out


def _print_error(text: str) -> None:
    sys.stderr.write(text if text.endswith("\n") else text + "\n")
    sys.stderr.flush()


def run_group(group: click.Group, args: list[str] | None = None, prog_name: str = "sluice") -> int:
    """Run a click group (the `sluice` CLI) and return the exit code; every failure becomes a kubectl-style
    message, never a traceback."""
    try:
        argv = normalise_bool_flags(list(sys.argv[1:] if args is None else args))
        rv: Any = group.main(args=argv, prog_name=prog_name, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except click.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError" and e.ctx is not None:
            # `sluice` alone prints the help like `kubectl` alone does.
            click.echo(e.ctx.get_help())
            return 0
        cmd = e.ctx.command_path if e.ctx else prog_name
        _print_error(f"error: {e.format_message()}\nSee '{cmd} --help' for usage.")
        return 1
    except click.ClickException as e:
        _print_error(f"error: {e.format_message()}")
        return 1
    except ApiError as e:
        _print_error(format_api_error(e))
        return 1
    except ConnectionFailed as e:
        _print_error(str(e))  # kubectl prints connection failures without a prefix
        return 1
    except ClientError as e:
        _print_error(f"error: {e}")
        return 1
    except CliError as e:
        if e.message:
            _print_error(e.message if e.raw else f"error: {e.message}")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `sluice get … | head`: stop quietly, and keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - the last line of defence: no traceback reaches a user
        if os.environ.get("SLUICE_DEBUG"):
            traceback.print_exc()
        _print_error(f"error: {type(e).__name__}: {e}")
        return 1
