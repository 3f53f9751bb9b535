"""The body worker process: decodes and admits large request bodies away from the daemon's event loop.

Run by `sluice.api.body_pool` as `python -m sluice.api.body_worker PARENT_PID`, one job at a time over its
stdin/stdout. A thread was not enough: composing 3 MiB of YAML takes seconds of pure Python, and the loop
thread serving the API waited for the GIL throughout. Here it runs the same functions the loop would (
`sluice.api.bodies.decode_object`, the registry's admission chain), so a bad body gets the same `Status`.

What comes back is compact JSON bytes, never pickled objects: taking a 2.4 MB object graph in on the loop
costs ≈ 30 ms as `json.loads` and ≈ 180 ms as `pickle.loads`, and for a dry run the loop sends the bytes as
they are, parsing nothing.

Framing: `sluice.api.body_wire`; the byte a worker writes as soon as it has read a job (`TAKEN`) tells the
pool whether a worker that died had the job (that request fails) or not (another worker takes it). Requests carry an `op` (`decode`, `patch_doc`, `create`, `replace`, `patch`);
answers `ok` and either the op's results or the `Status` fields of the error (`code`, `reason`, `message`,
`details`). With `plain`, `create` and `replace` answer the admitted object as compact JSON in its own key order
(the daemon stores it as a small write would be; the console shows that order as YAML) instead of the templates.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, cast

from sluice.api.body_wire import TAKEN, pack, read_job
from sluice.childproc import die_with_parent

__all__ = ["work", "guarded", "Job", "template", "main", "RETIRE_RSS"]

log = logging.getLogger("sluice.api.body_worker")

# A worker whose heap grew past this after a job exits once it has answered (the pool starts a fresh one):
# CPython seldom gives a large heap back to the system.
RETIRE_RSS = 384 * 1024 * 1024

# One job: the request's head and payloads in, the answer's head and payloads out.
Job = Callable[[dict[str, Any], list[bytes]], tuple[dict[str, Any], list[bytes]]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def template(obj: dict[str, Any]) -> bytes:
    """`obj` encoded with `metadata` first and without a resourceVersion (`sluice.store.sqlite.PRESTAMPED`): the
    daemon stores it, and answers with it, putting in the revision the store gives the object instead of
    encoding a large object again on its loop."""
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return _dumps({"metadata": meta, **{k: v for k, v in obj.items() if k != "metadata"}})


def work(head: dict[str, Any], payloads: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """One job: `head` and `payloads` as the pool sent them; the answer's head and payloads."""
    return guarded(_job, head, payloads)


def guarded(fn: Job, head: dict[str, Any], payloads: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """`fn(head, payloads)`, with an `ApiError` (or a bug) answered as the `Status` fields of the error."""
    from sluice.api.errors import ApiError

    try:
        return fn(head, payloads)
    except ApiError as e:
        return {"ok": False, "code": e.code, "reason": e.reason, "message": e.message, "details": e.details}, []
    except Exception as e:  # a bug: the daemon answers 500 with this text, as its own last line of defence does
        log.exception("body worker: %s failed", head.get("op"))
        return {"ok": False, "code": 500, "reason": "InternalError",
                "message": f"Internal error occurred: {type(e).__name__}: {e}", "details": None}, []


def _job(head: dict[str, Any], payloads: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    from sluice.api import bodies
    from sluice.api.errors import ApiError
    from sluice.api.registry import ApiOptions, Registry
    from sluice.resources.kinds import by_kind
    from sluice.store.sqlite import Store

    op = head["op"]
    if op == "decode":
        return {"ok": True}, [_dumps(bodies.decode_object(payloads[0], head["content_type"], head["kind"]))]
    rt = by_kind(head["group"], head["kind"])
    if rt is None:
        raise ApiError.gone_path()
    if op == "patch_doc":
        return {"ok": True}, [_dumps(Registry.patch_document(head["content_type"], payloads[0]))]
    # Admission reads nothing stored (the kinds whose writes do stay on the loop): no store here.
    reg = Registry(cast(Store, None), ApiOptions(**head["options"]))
    version, ns, fv = head["version"], head["namespace"], head["field_validation"]
    if op == "create":
        body = bodies.decode_object(payloads[0], head["content_type"], rt.kind)
        obj, warnings = reg._prepare_create(rt, version, ns, body, fv)
        m = obj["metadata"]
        if head.get("plain"):
            out = [_dumps(obj)]
        else:
            out = [_dumps(reg.present(rt, version, obj))] if head["dry_run"] else \
                [template(obj), template(reg.present(rt, version, obj))]
        return ({"ok": True, "warnings": warnings, "namespace": str(m.get("namespace") or ""),
                 "name": str(m.get("name") or "")}, out)
    current = json.loads(payloads[1])
    name, sub = head["name"], head["subresource"]
    if op == "replace":
        body = bodies.decode_object(payloads[0], head["content_type"], rt.kind)
        new, warnings = reg._prepare_replace(rt, version, ns, name, current, body, sub, fv)
    elif op == "patch":
        doc = Registry.patch_document(head["content_type"], payloads[0])
        apply = reg.patch_applier(rt, head["content_type"], doc, sub)
        new, warnings = reg._prepare_patch(rt, version, ns, name, current, apply, sub, fv)
    else:
        raise ValueError(f"unknown op {op!r}")
    if head.get("plain"):
        return {"ok": True, "warnings": warnings}, [_dumps(new)]
    if reg._same(current, new):  # nothing to store: the answer is the stored object
        return {"ok": True, "warnings": warnings, "same": True}, [_dumps(reg.present(rt, version, current))]
    if head["dry_run"]:
        return {"ok": True, "warnings": warnings, "same": False}, [_dumps(reg.present(rt, version, new))]
    return ({"ok": True, "warnings": warnings, "same": False},
            [template(new), template(reg.present(rt, version, new))])


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def main(argv: list[str] | None = None, job: Job = work) -> int:
    """The worker's loop: `job` answers each request (another program passes its own, which hands the ops it
    does not know to `work`)."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        die_with_parent(int(args[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the daemon's group is the daemon's to handle
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import sluice.api.registry  # noqa: F401 - imported before the first job, not during it

    # Nothing this process builds is cyclic garbage worth a collection (the collector would walk a 3 MiB
    # body's whole object graph, several times while it is being built).
    gc.disable()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        request = read_job(stdin)
        if request is None:  # the daemon closed the pipe: stop
            return 0
        stdout.write(TAKEN)  # the job is here: from now on, this worker's death is that request's failure
        stdout.flush()
        head, payloads = job(*request)
        del request
        retire = _rss() > RETIRE_RSS
        stdout.write(pack({**head, "retire": retire}, payloads))
        stdout.flush()
        if retire:
            return 0
        gc.collect()  # the job's objects are gone: this walks only the modules' (the daemon is not waiting)


if __name__ == "__main__":
    sys.exit(main())
