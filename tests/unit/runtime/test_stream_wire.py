"""The wire pieces of exec/attach/port-forward: SPDY/3.1 framing, channel Status bodies, resize decoding,
CRI records for attach, and the API server's option parsing."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from multidict import MultiDict

from sluice.api.errors import ApiError
from sluice.api.streaming import parse_options
from sluice.runtime.streams import channels, spdy
from sluice.runtime.streams.attach import split_records
from sluice.runtime.streams.execution import find_program


class Client:
    """What kubectl's spdystream writes and reads, built independently from the server's code."""

    def __init__(self) -> None:
        self.deflate = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS, zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def syn_stream(self, sid: int, headers: dict[str, str]) -> bytes:
        block = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
        body = struct.pack(">IIBB", sid, 0, 0, 0) + self.deflate.compress(block) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        return struct.pack(">HHI", 0x8003, 1, len(body)) + body

    def read_reply(self, frame: bytes) -> tuple[int, bytes]:
        word, flags_len = struct.unpack(">II", frame[:8])
        assert word == (0x8003 << 16) | 2
        sid = struct.unpack(">I", frame[8:12])[0]
        block = self.inflate.decompress(frame[12:8 + (flags_len & 0xFFFFFF)])
        return sid, block


def test_spdy_dictionary_is_the_spdy3_one() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_spdy_frames_split_anywhere_parse_the_same() -> None:
    c = Client()
    wire = (c.syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"})
            + c.syn_stream(3, {"streamtype": "data", "port": "80", "requestid": "0"})
            + struct.pack(">II", 3, (1 << 24) | 5) + b"hello"
            + struct.pack(">HHII", 0x8003, 6, 4, 7)  # PING 7
            + struct.pack(">HHIII", 0x8003, 3, 8, 3, 5))  # RST_STREAM 3 CANCEL
    p = spdy.Parser()
    frames = [f for i in range(len(wire)) for f in p.feed(wire[i:i + 1])]  # one byte per message, like the tunnel
    assert frames == [spdy.SynStream(1, {"streamtype": "error", "port": "80", "requestid": "0"}, False),
                      spdy.SynStream(3, {"streamtype": "data", "port": "80", "requestid": "0"}, False),
                      spdy.Data(3, b"hello", True), spdy.Ping(7), spdy.RstStream(3, spdy.CANCEL)]


def test_spdy_replies_share_one_compression_context() -> None:
    w, c = spdy.Writer(), Client()
    first, second = w.syn_reply(1), w.syn_reply(3)
    assert first[12:18] == bytes.fromhex("78f9e3c6a7c2")  # zlib header naming the SPDY dictionary
    assert c.read_reply(first) == (1, b"\x00\x00\x00\x00")
    assert c.read_reply(second) == (3, b"\x00\x00\x00\x00")
    assert w.data(3, b"x", fin=True) == struct.pack(">II", 3, (1 << 24) | 1) + b"x"
    assert w.rst(5, spdy.CANCEL) == struct.pack(">HHIII", 0x8003, 3, 8, 5, 5)


def test_spdy_rejects_unknown_control_frames() -> None:
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser().feed(struct.pack(">HHI", 0x8003, 10, 0))


def test_channel_status_bodies_match_kubelet() -> None:
    assert channels.success() == b'{"metadata":{},"status":"Success"}'
    assert json.loads(channels.exit_code(3)) == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: command terminated with exit code 3",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    err = json.loads(channels.internal_error("boom"))
    assert (err["message"], err["reason"], err["code"]) == ("Internal error occurred: boom", "InternalError", 500)


def test_resize_stream_decodes_across_messages() -> None:
    d = channels.ResizeDecoder()
    assert d.feed(b'{"Width":80,') == []
    assert d.feed(b'"Height":24}\n{"width":100,"height":30}\n') == [(80, 24), (100, 30)]
    assert d.feed(b'{"Width":-1,"Height":2}\n') == []


def test_attach_splits_cri_records() -> None:
    data = (b"2026-01-01T00:00:00.000000001Z stdout F hello\n"
            b"2026-01-01T00:00:00.000000002Z stderr P par\n"
            b"2026-01-01T00:00:00.000000003Z stdout F tail-no-newline")
    records, rest = split_records(data)
    assert records == [("stdout", b"hello\n"), ("stderr", b"par")]
    assert rest == b"2026-01-01T00:00:00.000000003Z stdout F tail-no-newline"


def test_find_program_reports_like_the_runtime(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    assert find_program("sh", env, "/") is None
    assert find_program("nope-nope", env, "/") == 'exec: "nope-nope": executable file not found in $PATH'
    assert "no such file or directory" in str(find_program("./missing", env, "/"))


POD = {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]}}


def q(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def test_exec_options_follow_kube_apiserver() -> None:
    o = parse_options("exec", POD, q(("command", "sh"), ("command", "-c"), ("command", ""), ("container", "app"),
                                     ("stdin", "true"), ("stdout", "1"), ("stderr", "FALSE"), ("tty", "0")))
    assert (o.command, o.container, o.stdin, o.stdout, o.stderr, o.tty) == (("sh", "-c", ""), "app", True, True,
                                                                            False, False)
    tty = parse_options("exec", POD, q(("command", "sh"), ("container", "app"), ("stdout", "true"),
                                       ("stderr", "true"), ("tty", "true")))
    assert tty.tty and not tty.stderr  # a terminal has no separate stderr


@pytest.mark.parametrize(("pairs", "message"), [
    ([("command", "x"), ("stdout", "true")], "a container name must be specified for pod web-1, choose one of: "
                                             "[app istio-proxy]"),
    ([("command", "x"), ("container", "db"), ("stdout", "true")], "container db is not valid for pod web-1"),
    ([("container", "app"), ("stdout", "true")], "you must specify at least one command for the container"),
    ([("command", "x"), ("container", "app")], "you must specify at least 1 of stdin, stdout, stderr"),
])
def test_exec_option_errors(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_options("exec", POD, q(*pairs))
    assert (e.value.code, e.value.message) == (400, message)


def test_port_forward_ports() -> None:
    assert parse_options("portforward", POD, q(("ports", "80,8080"), ("ports", "9090"))).ports == (80, 8080, 9090)
    with pytest.raises(ApiError):
        parse_options("portforward", POD, q(("ports", "70000")))
