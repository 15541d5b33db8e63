"""Loopback plumbing shared by the benchmarks and the tests (tests/live.py re-exports it): a free port, and one
raw request on a fresh connection."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw_request(base: str, data: bytes, *, timeout: float = 10.0, read_all: bool = True) -> bytes:
    """Send ``data`` on a fresh connection and return what comes back until the server closes (or timeout)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not read_all:
                break
        return b"".join(chunks)
