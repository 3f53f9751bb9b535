"""The console's worker process: the API server's body worker (`sluice.api.body_worker`) with the console's ops.

Run by the console's `sluice.api.body_pool.BodyPool` as `python -m sluice.console.worker PARENT_PID`. The
console serves on the daemon's event loop, beside the API server, xDS and ALS; what takes that loop seconds for a
large object is done here instead: decoding a body (`one`), admitting it (the body worker's `create` and
`replace`, with `plain`), dumping an object as the editor's YAML (`yaml`: 4 s for a 1.4 MB VirtualService) and
validating the Istio config (`validations`: the validator and the analyzers, about a second for it).

Ops (besides the body worker's), answering `ok` and:
* `one` (`content_type`; the body): `api_version` and the object as compact JSON, or `fail` = [code, message],
  the console's refusal (`sluice.console.bodies.one_object`);
* `yaml` (`api_version`, `kind`; the stored JSON text): the YAML text of the object as served at that version;
* `validations` (`namespace`, `kinds` = [[apiVersion, kind, count], ...]; the stored JSON texts of those
  kinds, in that order): `validation` = [[kind, namespace, name, summary], ...] and `items`, the config list's
  rows (`sluice.console.configs`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sluice.api import body_worker
from sluice.console import configs
from sluice.console.bodies import api_version_of, one_object, yaml_text
from sluice.console.params import Fail

__all__ = ["MODULE", "work", "main"]

MODULE = "sluice.console.worker"

Answer = tuple[dict[str, Any], list[bytes]]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _present(text: bytes | str, api_version: str, kind: str) -> dict[str, Any]:
    """A stored object as the registry serves it (`Registry.present`): the same keys in the same order."""
    out = dict(json.loads(text))
    out["apiVersion"] = api_version
    out["kind"] = kind
    return out


def _one(head: dict[str, Any], payloads: list[bytes]) -> Answer:
    try:
        obj = one_object(payloads[0], str(head["content_type"]))
    except Fail as e:
        return {"ok": True, "fail": [e.code, e.message]}, []
    return {"ok": True, "api_version": api_version_of(obj)}, [_dumps(obj)]


def _yaml(head: dict[str, Any], payloads: list[bytes]) -> Answer:
    return {"ok": True}, [yaml_text(_present(payloads[0], head["api_version"], head["kind"])).encode()]


def _validations(head: dict[str, Any], payloads: list[bytes]) -> Answer:
    everything: list[dict[str, Any]] = []
    texts = iter(payloads)
    for api_version, kind, count in head["kinds"]:
        everything.extend(_present(next(texts), api_version, kind) for _ in range(int(count)))
    found, validation = configs.validations(everything, head["namespace"])
    return ({"ok": True, "validation": [[*key, v] for key, v in validation.items()],
             "items": [configs.config_item(obj, validation[configs.key_of(obj)]) for obj in found]}, [])


_OPS = {"one": _one, "yaml": _yaml, "validations": _validations}


def work(head: dict[str, Any], payloads: list[bytes]) -> Answer:
    op = _OPS.get(str(head.get("op")))
    return body_worker.work(head, payloads) if op is None else body_worker.guarded(op, head, payloads)


def main(argv: list[str] | None = None) -> int:
    return body_worker.main(argv, work)


if __name__ == "__main__":
    sys.exit(main())
