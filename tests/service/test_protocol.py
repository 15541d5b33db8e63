"""c2f/service/protocol.py: each response leaves in one write, with every byte in order, on keep-alive, pipelined,
HEAD and closing connections; parser errors stay JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from c2f.service.main import create_app
from c2f.service.protocol import CoalescingWriter
from c2f.service.settings import Settings
from tests.fixtures import build_artifact, make_manifest, tiny_known_arrays
from tests.live import live_server, raw_request


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_loop_step_become_one_transport_write() -> None:
    async def scenario() -> FakeTransport:
        transport = FakeTransport()
        writer = CoalescingWriter(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.write(bytearray(b"body"))
        assert transport.writes == []  # nothing sent inside the step
        await asyncio.sleep(0)
        assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
        writer.write(b"second")
        assert writer.is_closing() is False  # any other attribute sends what is pending first
        writer.write(b"third")
        writer.close()  # and close never loses it
        await asyncio.sleep(0)
        return transport

    transport = asyncio.run(scenario())
    assert transport.writes[1:] == [b"second", b"third"] and transport.closed


@pytest.fixture
def tiny_root(artifact_root: Path) -> Path:
    build_artifact(artifact_root, "legcf", arrays=tiny_known_arrays(), manifest=make_manifest("legcf"))
    return artifact_root


def _responses(raw: bytes) -> list[tuple[bytes, bytes]]:
    """Split a stream of HTTP/1.1 responses with Content-Length into (status line, body) pairs."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(
            (int(v) for k, _, v in (x.partition(b": ") for x in lines[1:]) if k.lower() == b"content-length"), 0
        )
        out.append((lines[0], rest[:length]))
        raw = rest[length:]
    return out


def test_pipelined_keep_alive_head_and_close_answer_in_order(tiny_root: Path) -> None:
    app = create_app(Settings(artifact_root=str(tiny_root), reload_seconds=0))
    with live_server(app) as base:
        raw = raw_request(
            base,
            b"GET /recommend/alice?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /recommend/nobody HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        answers = _responses(raw)
        assert [status for status, _ in answers] == [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]
        assert json.loads(answers[0][1])["user_id"] == "alice" and len(json.loads(answers[0][1])["items"]) == 2
        assert json.loads(answers[1][1])["error"]["code"] == "unknown_user"

        head = raw_request(base, b"HEAD /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # HEAD: the header block arrives whole and alone (405 here: the routes are GET-only), then the close
        assert head.startswith(b"HTTP/1.1 405") and head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
