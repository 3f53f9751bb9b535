"""The `nc` busybox-based images find on their PATH (the sleep sample's `(date; sleep 1) | nc HOST PORT`)."""

from __future__ import annotations

import socket
import subprocess
import threading

from sluice.runtime.images import BUSYBOX_TOOLS, resolve


def _echo_server(prefix: bytes) -> tuple[socket.socket, int, list[bool]]:
    """tcp-echo's conversation: each line back with a prefix; closes when the client's side ends."""
    srv = socket.create_server(("127.0.0.1", 0))
    saw_eof: list[bool] = []

    def run() -> None:
        conn, _ = srv.accept()
        with conn:
            for line in conn.makefile("rb"):
                conn.sendall(prefix + line)
            saw_eof.append(True)

    threading.Thread(target=run, daemon=True).start()
    return srv, srv.getsockname()[1], saw_eof


def test_nc_sends_stdin_half_closes_and_prints_the_reply() -> None:
    srv, port, saw_eof = _echo_server(b"one ")
    with srv:
        out = subprocess.run(["sh", "-c", f"(echo hello; sleep 0.2) | {BUSYBOX_TOOLS / 'nc'} 127.0.0.1 {port}"],
                             capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout) == (0, "one hello\n"), out.stderr
    assert saw_eof == [True]  # the server saw the end of the client's input, as with busybox's nc


def test_nc_says_why_it_cannot_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    out = subprocess.run([str(BUSYBOX_TOOLS / "nc"), "127.0.0.1", str(port)], input="", capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1 and out.stderr.startswith("nc: can't connect to remote host (127.0.0.1): ")
    assert subprocess.run([str(BUSYBOX_TOOLS / "nc")], capture_output=True, text=True).stderr.startswith("Usage: nc")


def test_busybox_images_put_nc_ahead_of_the_host_path() -> None:
    for image in ("curlimages/curl:8.16.0", "busybox:1.36", "alpine"):
        program = resolve({"name": "sleep", "image": image, "command": ["/bin/sleep", "infinity"]})
        assert program.env["PATH"].split(":")[0] == str(BUSYBOX_TOOLS), image
    assert "PATH" not in resolve({"name": "x", "image": "ubuntu", "command": ["sleep", "1"]}).env
