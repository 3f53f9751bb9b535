"""Where the runtime keeps its state: `SLUICE_HOME/runtime/`.

```
runtime/ipam.json                      the last pod IP handed out (round-robin cursor)
runtime/admin/<pod IP>.sock            loopback mode: a sidecar's Envoy admin (0600, in a 0700 directory)
runtime/pods/<uid>/pod.json            the pod as started (metadata, spec) and its IP: enough to adopt or stop it
runtime/pods/<uid>/envoy.json          the sidecar's Envoy bootstrap
runtime/pods/<uid>/containers/<name>/  one container: state.json and per run N.log, N.pid, N.exit, N.shim
```

Used by the kubelet and the pod worker. Deleting a pod's directory frees its IP and drops its logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.runtime.supervisor import ContainerFiles

__all__ = ["RuntimeLayout", "PodDir"]

_UID = re.compile(r"^[A-Za-z0-9\-]+$")


@dataclass(frozen=True)
class PodDir:
    root: Path

    @property
    def info_file(self) -> Path:
        return self.root / "pod.json"

    @property
    def bootstrap(self) -> Path:
        return self.root / "envoy.json"

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and isinstance(data.get("pod"), dict) and data.get("ip") else None

    def write(self, pod: dict[str, Any], ip: str, start_time: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        meta = pod.get("metadata") or {}
        keep = {"metadata": {k: meta[k] for k in ("name", "namespace", "uid", "labels", "annotations") if k in meta},
                "spec": pod.get("spec") or {}}
        tmp = self.info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pod": keep, "ip": ip, "startTime": start_time}))
        os.replace(tmp, self.info_file)

    def container(self, name: str) -> ContainerFiles:
        d = self.root / "containers" / name
        d.mkdir(parents=True, exist_ok=True)
        return ContainerFiles(d)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class RuntimeLayout:
    root: Path

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    @property
    def ipam(self) -> Path:
        return self.root / "ipam.json"

    @property
    def admin_sockets(self) -> Path:
        return self.root / "admin"

    def admin_socket(self, ip: str) -> Path:
        """Where a loopback-mode proxy's Envoy admin listens (named by pod IP: unique among running pods, and
        short, since a Unix socket's path has at most 107 bytes)."""
        return self.admin_sockets / f"{ip}.sock"

    def prepare(self) -> None:
        self.pods.mkdir(parents=True, exist_ok=True)
        # Only the daemon's user may even look up the sockets: Envoy creates one with the umask's mode and
        # chmods it to 0600 only after binding.
        self.admin_sockets.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.admin_sockets, 0o700)

    def pod(self, uid: str) -> PodDir:
        if not _UID.match(uid):
            raise ValueError(f"unusable pod uid {uid!r}")
        return PodDir(self.pods / uid)

    def existing(self) -> dict[str, PodDir]:
        """Every pod directory with a readable pod.json, by uid."""
        out: dict[str, PodDir] = {}
        if not self.pods.is_dir():
            return out
        for entry in self.pods.iterdir():
            d = PodDir(entry)
            if entry.is_dir() and d.read() is not None:
                out[entry.name] = d
            elif entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)  # a start interrupted before pod.json was written
        return out
