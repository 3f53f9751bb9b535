"""`sluice logs`: container logs of a pod, or of every pod matching `-l` (tail 10 each, like kubectl)."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from dataclasses import dataclass
from typing import Any

import click

from sluice.cli.context import Session, global_options, session
from sluice.cli.delete import parse_duration
from sluice.cli.errors import CliError, format_api_error
from sluice.client.errors import ApiError

__all__ = ["COMMANDS", "pick_container", "log_query"]

SELECTOR_TAIL = 10  # kubectl's default --tail when a selector is used
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


@dataclass(frozen=True)
class _Stream:
    pod: str
    container: str


def pick_container(pod: dict[str, Any], container: str | None, *, all_containers: bool = False) -> list[str]:
    """The container(s) to read: `-c`, else the default-container annotation, else the first (with a notice)."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or [] if isinstance(c, dict)]
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    if all_containers:
        return names
    if container:
        init = [str(c.get("name")) for c in spec.get("initContainers") or [] if isinstance(c, dict)]
        if names and container not in names + init:
            raise CliError(f"container {container} is not valid for pod {pod_name}")
        return [container]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    default = annotations.get(DEFAULT_CONTAINER_ANNOTATION)
    if default and default in names:
        return [default]
    if not names:
        raise CliError(f"pod {pod_name} has no containers")
    if len(names) > 1:
        click.echo(f'Defaulted container "{names[0]}" out of: {", ".join(names)}', err=True)
    return [names[0]]


def log_query(container: str, *, follow: bool, tail: int, previous: bool, timestamps: bool,
              since: str | None, since_time: str | None, limit_bytes: int | None) -> dict[str, str | int | bool | None]:
    q: dict[str, str | int | bool | None] = {"container": container}
    if follow:
        q["follow"] = True
    if previous:
        q["previous"] = True
    if timestamps:
        q["timestamps"] = True
    if tail >= 0:
        q["tailLines"] = tail
    if since:
        seconds = parse_duration(since)
        q["sinceSeconds"] = max(1, int(seconds + 0.999))
    if since_time:
        try:
            dt.datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f'invalid --since-time "{since_time}": must be RFC3339') from None
        q["sinceTime"] = since_time
    if limit_bytes:
        q["limitBytes"] = limit_bytes
    return q


def _consume(s: Session, ns: str, stream: _Stream, query: dict[str, str | int | bool | None], prefix: bool,
             lock: threading.Lock) -> str | None:
    """Copy one log stream to stdout; returns an error text instead of raising (used from threads)."""
    label = f"[pod/{stream.pod}/{stream.container}] " if prefix else ""
    try:
        for line in s.client.logs(ns, stream.pod, query):
            text = line.decode("utf-8", "replace")
            with lock:
                sys.stdout.write(label + text if text.endswith("\n") else label + text + "\n")
                sys.stdout.flush()
    except ApiError as e:
        return format_api_error(e)
    return None


@click.command("logs")
@click.argument("args", nargs=-1)
@click.option("-c", "--container", help="Print the logs of this container.")
@click.option("-l", "--selector", help="Label selector of the pods.")
@click.option("-f", "--follow", is_flag=True, help="Stream the logs.")
@click.option("--tail", type=int, default=-1, help="Lines of recent log to show (-1: all; 10 with a selector).")
@click.option("--prefix", is_flag=True, help="Prefix each line with the pod and container name.")
@click.option("--since", help="Only logs newer than a relative duration like 5s, 2m, or 3h.")
@click.option("--since-time", help="Only logs after an RFC3339 date.")
@click.option("--timestamps", is_flag=True, help="Include timestamps on each line.")
@click.option("-p", "--previous", is_flag=True, help="The logs of the previous container instance.")
@click.option("--all-containers", is_flag=True, help="The logs of every container in the pod(s).")
@click.option("--limit-bytes", type=int, help="Maximum bytes of logs to return.")
@click.option("--max-log-requests", type=int, default=5, show_default=True,
              help="With a selector and -f: how many logs to follow at once.")
@global_options
def logs_cmd(args: tuple[str, ...], container: str | None, selector: str | None, follow: bool, tail: int,
             prefix: bool, since: str | None, since_time: str | None, timestamps: bool, previous: bool,
             all_containers: bool, limit_bytes: int | None, max_log_requests: int) -> None:
    """Print the logs of a container in a pod (`sluice logs -l app=reviews -c istio-proxy`)."""
    if since and since_time:
        raise CliError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    s = session()
    ns = s.namespace
    pods_info = s.client.resolve("pods")
    pods: list[dict[str, Any]]
    if selector:
        if args:
            raise CliError("only a selector (-l) or a POD name is allowed")
        pods = s.client.list(pods_info, ns, label_selector=selector).get("items") or []
        if not pods:
            click.echo(f"No resources found in {ns} namespace.", err=True)
            return
        if tail < 0:
            tail = SELECTOR_TAIL
    else:
        if len(args) != 1 and not (len(args) == 2 and not container):
            raise CliError("expected POD or TYPE/NAME is a required argument for the logs command")
        if len(args) == 2:
            container = args[1]
        ref = args[0]
        type_, _, name = ref.rpartition("/")
        if type_ and s.client.resolve(type_).kind != "Pod":
            pods = _pods_of_workload(s, type_, name, ns)
        else:
            pods = [s.client.get(pods_info, name, ns)]
    streams = [_Stream(str(p["metadata"]["name"]), c) for p in pods
               for c in pick_container(p, container, all_containers=all_containers)]
    lock = threading.Lock()
    if follow and len(streams) > 1:
        if len(streams) > max_log_requests:
            raise CliError(f"you are attempting to follow {len(streams)} log streams, but maximum allowed "
                           f"concurrency is {max_log_requests}, use --max-log-requests to increase the limit")
        errors: list[str] = []
        threads = []
        for st in streams:
            q = log_query(st.container, follow=follow, tail=tail, previous=previous, timestamps=timestamps,
                          since=since, since_time=since_time, limit_bytes=limit_bytes)

            def work(st: _Stream = st, q: dict[str, str | int | bool | None] = q) -> None:
                err = _consume(s, ns, st, q, prefix, lock)
                if err:
                    errors.append(err)

            th = threading.Thread(target=work, daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            while th.is_alive():
                th.join(0.5)
        if errors:
            raise CliError("\n".join(errors), raw=True)
        return
    for st in streams:
        q = log_query(st.container, follow=follow, tail=tail, previous=previous, timestamps=timestamps,
                      since=since, since_time=since_time, limit_bytes=limit_bytes)
        err = _consume(s, ns, st, q, prefix, lock)
        if err:
            raise CliError(err, raw=True)


def _pods_of_workload(s: Session, type_: str, name: str, ns: str) -> list[dict[str, Any]]:
    """`logs deployment/x`: one pod chosen by the workload's selector (kubectl says which)."""
    info = s.client.resolve(type_)
    obj = s.client.get(info, name, ns)
    match = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not match:
        raise CliError(f"cannot get the logs from {info.kind_qualified}/{name}: no selector")
    sel = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    pods = s.client.list(s.client.resolve("pods"), ns, label_selector=sel).get("items") or []
    if not pods:
        raise CliError(f"timed out waiting for the condition on pods for {info.kind_qualified}/{name}")
    if len(pods) > 1:
        click.echo(f"Found {len(pods)} pods, using pod/{pods[0]['metadata']['name']}", err=True)
    return pods[:1]


COMMANDS = [logs_cmd]
