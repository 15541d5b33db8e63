"""Interaction events per second through ``POST /interactions``, and that every acknowledged event is in Redis.

Publishes a random ud model (``--users`` x ``--items``, its dataset hash random, so the run has a stream of its
own), starts ``c2f serve`` on loopback with an external Redis (``--workers`` server processes), and runs
``--clients`` threads that post batches of ``--batch`` events (random trained users and items, ``--new-users`` of
them from users the model never trained) for ``--seconds``. Prints events/s acknowledged, request latencies, and
how many acknowledged events are missing from the stream (must be 0). ``--kill-after S`` SIGKILLs the server
process S seconds in and starts it again, as tests/reliability/test_events_sigkill.py does.

    python benchmarks/events.py --seconds 5 --clients 4 --batch 100
"""

from __future__ import annotations

if not __package__:  # run as `python benchmarks/events.py`
    import _as_script  # noqa: F401

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from redis import Redis

from benchmarks.artifacts import build_artifact, make_arrays, make_manifest
from benchmarks.common import ROOT, machine
from benchmarks.net import free_port
from c2f.service.events import stream_key

DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


def publish_model(root: Path, n_users: int, n_items: int, d: int = 32) -> str:
    """A random ud model in ``root`` whose dataset hash is fresh; returns that hash (its events' stream follows)."""
    content_hash = uuid.uuid4().hex * 2
    arrays = make_arrays("ud", n_users=n_users, n_items=n_items, d=d, seen_per_user=5)
    manifest = make_manifest("ud", dataset={"uri": "file://bench", "content_hash": content_hash, "stats": {}})
    build_artifact(root, "ud", arrays=arrays, manifest=manifest)
    return content_hash


@dataclass
class EventServer:
    """``c2f serve`` as a subprocess on a loopback port, on an external Redis."""

    artifact_root: Path
    redis_url: str
    namespace: str
    workers: int = 1
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "C2F_ARTIFACT_ROOT": str(self.artifact_root),
            "C2F_REDIS_URL": self.redis_url,
            "C2F_EVENTS_NAMESPACE": self.namespace,
            "C2F_RELOAD_SECONDS": "0",
            "C2F_LOG_LEVEL": "warning",
            "C2F_ACCESS_LOG": "false",
            "C2F_MAX_FOLDED_USERS": str(10**7),
            **self.extra_env,
        }
        cmd = [sys.executable, "-m", "c2f.cli.main", "serve", "--port", str(self.port), "--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"c2f serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("c2f serve did not become ready in time")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class EventLoad:
    """Client threads posting event batches; every acknowledged event is kept as (stream id, user id, item id)."""

    base: str
    n_users: int
    n_items: int
    batch: int = 100
    new_users: float = 0.1
    acked: list[tuple[str, str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    requests: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client(self, offset: int) -> None:
        rng = random.Random(offset)
        sequence = 0
        with httpx.Client(base_url=self.base, timeout=10) as http:
            while not self._stop.is_set():
                events = []
                for _ in range(self.batch):
                    if rng.random() < self.new_users:
                        user = f"new-{offset}-{sequence}"
                        sequence += 1
                    else:
                        user = f"u{rng.randrange(self.n_users)}"
                    events.append({"user_id": user, "item_id": f"i{rng.randrange(self.n_items)}"})
                start = time.perf_counter()
                try:
                    r = http.post("/interactions", json={"events": events})
                except httpx.TransportError:
                    with self._lock:
                        self.failures += 1
                    time.sleep(0.05)  # the server is down (killed): try again shortly
                    continue
                elapsed = time.perf_counter() - start
                with self._lock:
                    self.requests += 1
                    if r.status_code != 200:
                        self.failures += 1
                        continue
                    self.latencies.append(elapsed)
                    for event, result in zip(events, r.json()["results"], strict=True):
                        if result["error"] is None:
                            self.acked.append((result["id"], event["user_id"], event["item_id"]))

    def start(self, clients: int) -> None:
        self._threads = [threading.Thread(target=self._client, args=(k,), daemon=True) for k in range(clients)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def missing_from_stream(client: Redis, stream: str, acked: Sequence[tuple[str, str, str]]) -> list[str]:
    """The acknowledged events that the stream does not hold as acknowledged (id, user, item)."""
    held: dict[str, tuple[str, str]] = {}
    start = "-"
    while True:
        entries = cast(list[Any], client.xrange(stream, min=start, max="+", count=10_000))
        for entry_id, fields in entries:
            held[entry_id.decode()] = (fields[b"u"].decode(), fields[b"i"].decode())
        if len(entries) < 10_000:
            break
        start = "(" + entries[-1][0].decode()
    return [entry_id for entry_id, user, item in acked if held.get(entry_id) != (user, item)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:10]}"
    redis = Redis.from_url(args.redis_url)
    redis.ping()
    with tempfile.TemporaryDirectory(prefix="c2f-events-bench-") as tmp:
        root = Path(tmp) / "artifacts"
        content_hash = publish_model(root, args.users, args.items)
        stream = stream_key(namespace, content_hash)
        server = EventServer(root, args.redis_url, namespace, workers=args.workers)
        server.start()
        load = EventLoad(server.base, args.users, args.items, batch=args.batch, new_users=args.new_users)
        restarts = 0
        try:
            started = time.monotonic()
            load.start(args.clients)
            if args.kill_after is not None and args.kill_after < args.seconds:
                time.sleep(args.kill_after)
                server.kill()
                server.start()
                restarts += 1
            time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
            load.stop()
            elapsed = time.monotonic() - started
            missing = missing_from_stream(redis, stream, load.acked)
            stream_length = int(cast(int, redis.xlen(stream)))
        finally:
            load.stop()
            server.stop()
            redis.delete(stream)
    latencies = np.asarray(load.latencies) * 1000 if load.latencies else np.zeros(1)
    return {
        "events_per_s": round(len(load.acked) / elapsed, 1),
        "requests_per_s": round(load.requests / elapsed, 1),
        "acked": len(load.acked),
        "stream_length": stream_length,
        "missing": len(missing),
        "failed_requests": load.failures,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "seconds": round(elapsed, 2),
        "clients": args.clients,
        "batch": args.batch,
        "workers": args.workers,
        "users": args.users,
        "items": args.items,
        "new_users": args.new_users,
        "restarts": restarts,
        "machine": machine().describe(),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--workers", type=int, default=1, help="server processes (c2f serve --workers)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--new-users", type=float, default=0.1, help="fraction of events from new users")
    parser.add_argument("--kill-after", type=float, default=None, help="SIGKILL and restart the server then")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    print(json.dumps(report))
    return 0 if report["missing"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
