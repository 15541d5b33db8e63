"""Reliability under faults: `c2f serve` on loopback while clients keep asking and things break.

    python benchmarks/chaos.py                       # about 60 s of scenarios, a table on stdout
    python benchmarks/chaos.py --duration 120 --json results.json
    python benchmarks/chaos.py --scenarios hot_swap,hostile --duration 10

Everything runs on 127.0.0.1: a small fixture artifact in a temp directory, a ``redis-server`` this script starts
on a free loopback port (never the machine's own Redis), one RQ worker on it and ``c2f serve`` (one process,
``C2F_RELOAD_SECONDS=0.2``).  Four client threads send ``GET /recommend/{user}?n=10`` the whole time (keep-alive,
closed loop with a 2 ms pause; ``verify=False`` only because loading CA certificates for an SSL context
nobody uses costs seconds of CPU on a busy machine).  Scenarios, in this order, each for its share of ``--duration``:

* ``hot_swap``: good versions published every 0.5 s.  Detect: publish -> first answer from the new version.
* ``corrupt_publish``: every kind of :mod:`benchmarks.faults` (flipped bytes, truncation, bad JSON, a wrong
  shape and a NaN with a valid sha256, ``../`` in LATEST, a missing version), each after a good version.  Detect:
  publish -> ``GET /models`` reports the failure.  An answer from a broken version counts as an error.  Every
  kind runs at least once, even past the scenario's share.
* ``worker_sigkill``: a job runs (``sleepy_job``), its worker is SIGKILLed.  Detect: kill -> ``GET /jobs/{id}``
  says failed (heartbeat 1 s, abandoned after 2 s more).
* ``hostile``: malformed and oversized requests (:data:`HOSTILE`) from two more threads.  Errors: an answer that
  is a 5xx, not JSON, or none at all.
* ``redis_frozen`` / ``redis_stopped``: the Redis is SIGSTOPped / stopped, later resumed / restarted on its port,
  while a probe asks ``GET /jobs`` every 0.1 s.  Detect: fault -> first 503 from /jobs; recover: resume -> first
  200.  Serving must not notice.

Per scenario: recommend requests, errors, p50/p99 latency (ms) and seconds to detect (median and max where there
are several).  The whole run stops by itself: every wait is bounded by its scenario's time plus a grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from benchmarks.artifacts import build_artifact
from benchmarks.common import machine
from benchmarks.faults import FAULTS, publish_faulty
from benchmarks.jobs import SLEEPY, enqueue, start_worker, stop_process
from benchmarks.net import free_port, raw_request
from benchmarks.serve_bench import run_server
from c2f.jobs.server import redis_binary
from c2f.service.settings import Settings

SCENARIOS: dict[str, float] = {  # name -> share of --duration
    "hot_swap": 1.0,
    "corrupt_publish": 1.5,
    "worker_sigkill": 1.0,
    "hostile": 1.0,
    "redis_frozen": 0.75,
    "redis_stopped": 0.75,
}
SIZES = {"n_users": 200, "n_items": 400}
USERS = [f"u{i}" for i in range(SIZES["n_users"])]
CLIENTS = 4
GRACE = 15.0  # seconds a detection may take beyond its scenario's share before it counts as not detected
SERVICE_ENV = {
    "C2F_REDIS_TIMEOUT_SECONDS": "0.5",
    "C2F_JOB_HEARTBEAT_SECONDS": "1",
    "C2F_JOB_ABANDON_SECONDS": "2",
    "C2F_ACCESS_LOG": "false",
}


# ----------------------------------------------------------------------------------------------------------------
# Redis of our own
# ----------------------------------------------------------------------------------------------------------------
class LoopbackRedis:
    """A ``redis-server`` child on 127.0.0.1:<free port>, no persistence; stop/restart keep the port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        from redis import Redis

        cmd = [
            redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        client = Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(Exception):
                    if client.ping():
                        return
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
                time.sleep(0.05)
        finally:
            client.close()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# ----------------------------------------------------------------------------------------------------------------
# Load and probes
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Record:
    at: float  # monotonic send time
    seconds: float
    status: int  # 0: no answer
    version: str | None = None


@dataclass
class Load:
    """``CLIENTS`` threads asking ``GET /recommend/{user}?n=10`` until stopped; every answer is recorded."""

    base: str
    records: list[Record] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client(self, offset: int) -> None:
        i = offset
        with httpx.Client(base_url=self.base, timeout=10, verify=False) as http:
            while not self._stop.is_set():
                i += 1
                start = time.monotonic()
                try:
                    r = http.get(f"/recommend/{USERS[i % len(USERS)]}", params={"n": 10})
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    rec = Record(start, time.monotonic() - start, r.status_code, version)
                except (httpx.HTTPError, ValueError):
                    rec = Record(start, time.monotonic() - start, 0)
                self.records.append(rec)  # list.append is atomic under the GIL
                time.sleep(0.002)

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._client, args=(k * 37,), daemon=True) for k in range(CLIENTS)]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(self.records) < CLIENTS and time.monotonic() < deadline:  # traffic flows before any scenario
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def window(self, t0: float, t1: float) -> list[Record]:
        return [r for r in list(self.records) if t0 <= r.at < t1]

    def first_answer_from(self, version: str, after: float) -> float | None:
        times = [r.at + r.seconds for r in list(self.records) if r.version == version and r.at + r.seconds >= after]
        return min(times) if times else None


@contextlib.contextmanager
def probing(base: str, path: str, every: float = 0.1) -> Iterator[list[tuple[float, int]]]:
    """(answer time, status; 0 for none) of ``GET path`` every ``every`` seconds while the block runs."""
    out: list[tuple[float, int]] = []
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(base_url=base, timeout=10, verify=False) as http:
            while not stop.is_set():
                try:
                    status = http.get(path).status_code
                except httpx.HTTPError:
                    status = 0
                out.append((time.monotonic(), status))
                stop.wait(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        stop.set()
        thread.join(15)


def wait_until(predicate: Callable[[], Any], deadline: float, interval: float = 0.05) -> Any:
    """``predicate()``'s first truthy value, or None once ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    return None


def summarize(records: Sequence[Record], bad_versions: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Requests, errors (not a 200, or a 200 from a broken version) and latency percentiles (ms)."""
    ms = np.array([r.seconds * 1000 for r in records]) if records else np.zeros(0)
    errors = sum(1 for r in records if r.status != 200 or r.version in bad_versions)
    return {
        "requests": len(records),
        "errors": errors,
        "p50_ms": round(float(np.percentile(ms, 50)), 2) if ms.size else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 2) if ms.size else None,
    }


def detect_summary(times: Sequence[float | None]) -> dict[str, Any]:
    found = [t for t in times if t is not None]
    return {
        "events": len(times),
        "detected": len(found),
        "median_s": round(statistics.median(found), 3) if found else None,
        "max_s": round(max(found), 3) if found else None,
    }


# ----------------------------------------------------------------------------------------------------------------
# Scenarios
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Context:
    base: str
    root: Path
    load: Load
    redis: LoopbackRedis
    settings: Settings
    worker: subprocess.Popen[bytes] | None
    seed: int = 1000

    def publish_good(self) -> str:
        self.seed += 1
        return build_artifact(self.root, "c2f", seed=self.seed, **SIZES)


def hot_swap(ctx: Context, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    published: list[tuple[str, float]] = []
    while time.monotonic() < t0 + seconds:
        version = ctx.publish_good()
        published.append((version, time.monotonic()))
        time.sleep(0.5)
    t1 = time.monotonic()
    last, last_at = published[-1]
    wait_until(lambda: ctx.load.first_answer_from(last, last_at), t1 + GRACE)
    detect = []
    for version, at in published:
        seen = ctx.load.first_answer_from(version, at)
        detect.append(None if seen is None else seen - at)
    # a version replaced within one poll period may never be served: that is not a failure, only the last must be
    return {
        **summarize(ctx.load.window(t0, t1)),
        "detect": detect_summary(detect),
        "notes": f"{len(published)} versions published, {sum(d is not None for d in detect)} served",
        "ok": detect[-1] is not None,
    }


def corrupt_publish(ctx: Context, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    bad: set[str] = set()
    by_kind: dict[str, list[float | None]] = {}
    i = 0
    with httpx.Client(base_url=ctx.base, timeout=10, verify=False) as http:

        def models() -> dict[str, Any]:
            return http.get("/models").json()  # type: ignore[no-any-return]

        while i < len(FAULTS) or time.monotonic() < t0 + seconds:  # every kind once, then more while time is left
            good = ctx.publish_good()
            end = time.monotonic() + GRACE
            wait_until(lambda g=good: (m := models())["loaded"]["version"] == g and m["last_error"] is None, end)
            kind = FAULTS[i % len(FAULTS)]
            i += 1
            ctx.seed += 1
            broken = publish_faulty(ctx.root, kind, seed=ctx.seed, **SIZES)
            at = time.monotonic()  # LATEST was written last: detection counts from there
            if broken is not None:
                bad.add(broken)

            def failed(b: str | None = broken) -> bool:
                m = models()
                return m["last_error"] is not None and (b is None or m["failed_version"] == b)

            seen = wait_until(failed, time.monotonic() + GRACE)
            by_kind.setdefault(kind, []).append(time.monotonic() - at if seen else None)
    t1 = time.monotonic()
    ctx.publish_good()  # leave a good LATEST for the next scenario
    flat = [t for times in by_kind.values() for t in times]
    return {
        **summarize(ctx.load.window(t0, t1), bad),
        "detect": detect_summary(flat),
        "detect_by_kind": {kind: detect_summary(times) for kind, times in by_kind.items()},
        "notes": f"{len(flat)} broken publishes ({len(bad)} broken versions), never served: "
        f"{not any(r.version in bad for r in ctx.load.window(t0, time.monotonic()))}",
        "ok": all(t is not None for t in flat) and not any(r.version in bad for r in ctx.load.records),
    }


def worker_sigkill(ctx: Context, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    worker = ctx.worker
    if worker is None or worker.poll() is not None:
        return {**summarize([]), "detect": detect_summary([]), "notes": "no worker running", "ok": False}
    job = enqueue(ctx.settings, SLEEPY, seconds=600)
    with httpx.Client(base_url=ctx.base, timeout=10, verify=False) as http:

        def status() -> dict[str, Any]:
            return http.get(f"/jobs/{job.id}").json()  # type: ignore[no-any-return]

        started = wait_until(lambda: status()["status"] == "started", t0 + seconds + GRACE)
        if not started:
            return {**summarize(ctx.load.window(t0, time.monotonic())), "detect": detect_summary([None]),
                    "notes": "the job never started", "ok": False}  # fmt: skip
        killed = time.monotonic()
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        failed = wait_until(lambda: (s := status())["status"] == "failed" and s, killed + max(seconds, 10) + GRACE)
        detect = time.monotonic() - killed if failed else None
    t1 = time.monotonic()
    reason = failed["error"] if failed else None
    return {
        **summarize(ctx.load.window(t0, t1)),
        "detect": detect_summary([detect]),
        "notes": f"job failed as: {reason!r}",
        "ok": bool(failed) and "stopped unexpectedly" in str(reason),
    }


def _raw(base: str, data: bytes) -> tuple[int, bytes]:
    answer = raw_request(base, data, timeout=10)
    head, _, body = answer.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


def _json_post(path: str, body: str | bytes) -> Callable[[httpx.Client, str], tuple[int, bytes]]:
    def send(http: httpx.Client, base: str) -> tuple[int, bytes]:
        r = http.post(path, content=body, headers={"content-type": "application/json"})
        return r.status_code, r.content

    return send


def _get(path: str, **kwargs: Any) -> Callable[[httpx.Client, str], tuple[int, bytes]]:
    def send(http: httpx.Client, base: str) -> tuple[int, bytes]:
        r = http.get(path, **kwargs)
        return r.status_code, r.content

    return send


def _method(method: str, path: str) -> Callable[[httpx.Client, str], tuple[int, bytes]]:
    def send(http: httpx.Client, base: str) -> tuple[int, bytes]:
        r = http.request(method, path)
        return r.status_code, r.content

    return send


HOSTILE: dict[str, Callable[[httpx.Client, str], tuple[int, bytes]]] = {
    "lone_surrogate": _json_post("/recommend/batch", '{"user_ids": ["\\ud800"], "n": 3}'),
    "truncated_json": _json_post("/recommend/batch", '{"user_ids": ['),
    "nan_in_json": _json_post("/recommend/batch", '{"user_ids": ["u1"], "n": NaN}'),
    "deep_json": _json_post("/recommend/batch", "[" * 50_000 + "]" * 50_000),
    "body_over_limit": _json_post("/recommend/batch", b'{"user_ids": ["' + b"x" * 2_000_000 + b'"]}'),
    "exclude_over_limit": _json_post("/recommend/batch", json.dumps({"user_ids": ["u1"], "exclude": ["x"] * 5000})),
    "negative_n": _get("/recommend/u1", params={"n": -1}),
    "huge_n": _get("/recommend/u1", params={"n": 10**12}),
    "path_traversal_user": _get("/recommend/..%2F..%2Fetc%2Fpasswd"),
    "nul_user": _get("/recommend/%00"),
    "unknown_method": _method("BREW", "/recommend/u1"),
    "header_over_limit": _get("/health/live", headers={"x-big": "y" * 200_000}),
    "url_over_limit": _get("/recommend/u1", params={"exclude": "x" * 9000}),
    "garbage_request_line": lambda http, base: _raw(base, b"GARBAGE\r\n\r\n"),
    "huge_raw_url": lambda http, base: _raw(
        base, b"GET /recommend/u1?exclude=" + b"x" * 300_000 + b" HTTP/1.1\r\n\r\n"
    ),
}
"""Hostile requests: each must get a JSON answer below 500, promptly."""


def hostile(ctx: Context, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    results: dict[str, list[int]] = {name: [0, 0] for name in HOSTILE}  # sent, bad answers
    stop = threading.Event()

    def attack(offset: int) -> None:
        names = list(HOSTILE)
        i = offset
        with httpx.Client(base_url=ctx.base, timeout=10, verify=False) as http:
            while not stop.is_set():
                name = names[i % len(names)]
                i += 1
                try:
                    status, body = HOSTILE[name](http, ctx.base)
                    good = 0 < status < 500 and isinstance(json.loads(body), dict)
                except (httpx.HTTPError, OSError, ValueError):
                    good = False
                results[name][0] += 1
                results[name][1] += 0 if good else 1

    threads = [threading.Thread(target=attack, args=(k * 7,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    t1 = time.monotonic()
    sent = sum(v[0] for v in results.values())
    bad = {name: v[1] for name, v in results.items() if v[1]}
    return {
        **summarize(ctx.load.window(t0, t1)),
        "hostile_requests": sent,
        "hostile_errors": sum(bad.values()),
        "hostile_errors_by_kind": bad,
        "detect": detect_summary([]),
        "notes": f"{sent} hostile requests, {sum(bad.values())} without a JSON answer below 500",
        "ok": not bad,
    }


def _redis_fault(ctx: Context, seconds: float, fault: Callable[[], None], repair: Callable[[], None]) -> dict[str, Any]:
    t0 = time.monotonic()
    with probing(ctx.base, "/jobs") as probe:
        time.sleep(min(1.0, seconds / 4))
        at = time.monotonic()
        fault()
        first_503 = wait_until(lambda: next((t for t, s in probe if t > at and s == 503), None), at + seconds + GRACE)
        time.sleep(max(0.0, at + seconds / 2 - time.monotonic()))
        repaired = time.monotonic()
        repair()
        first_200 = wait_until(
            lambda: next((t for t, s in probe if t > repaired and s == 200), None), repaired + seconds + GRACE
        )
        statuses = sorted({s for _, s in probe})
    t1 = time.monotonic()
    detect = None if first_503 is None else first_503 - at
    recover = None if first_200 is None else first_200 - repaired
    records = ctx.load.window(t0, t1)
    return {
        **summarize(records),
        "detect": detect_summary([detect]),
        "recover_s": None if recover is None else round(recover, 3),
        "notes": f"/jobs answered {statuses}",
        "ok": detect is not None and recover is not None and all(r.status == 200 for r in records),
    }


def redis_frozen(ctx: Context, seconds: float) -> dict[str, Any]:
    return _redis_fault(
        ctx, seconds, lambda: ctx.redis.signal(signal.SIGSTOP), lambda: ctx.redis.signal(signal.SIGCONT)
    )


def redis_stopped(ctx: Context, seconds: float) -> dict[str, Any]:
    return _redis_fault(ctx, seconds, ctx.redis.stop, ctx.redis.start)


RUNNERS: dict[str, Callable[[Context, float], dict[str, Any]]] = {
    "hot_swap": hot_swap,
    "corrupt_publish": corrupt_publish,
    "worker_sigkill": worker_sigkill,
    "hostile": hostile,
    "redis_frozen": redis_frozen,
    "redis_stopped": redis_stopped,
}


# ----------------------------------------------------------------------------------------------------------------
# Run
# ----------------------------------------------------------------------------------------------------------------
def run(scenarios: Sequence[str], duration: float, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Start Redis, a worker and ``c2f serve``, run ``scenarios`` for their shares of ``duration`` seconds."""
    weights = {name: SCENARIOS[name] for name in scenarios}
    shares = {name: duration * w / sum(weights.values()) for name, w in weights.items()}
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="c2f-chaos-"))
    redis = LoopbackRedis(tmp)
    worker = None
    results: dict[str, Any] = {}
    try:
        redis.start()
        root = tmp / "artifacts"
        build_artifact(root, "c2f", seed=0, **SIZES)
        settings = Settings(
            redis_url=redis.url,  # the default queue name: the service (C2F_* below) and the worker agree on it
            artifact_root=str(root),
            data_root=tmp,
            reload_seconds=0.2,
            redis_timeout_seconds=0.5,
            job_heartbeat_seconds=1,
            job_abandon_seconds=2,
        )
        if "worker_sigkill" in scenarios:
            worker = start_worker(settings)
        progress(f"redis-server on {redis.url}; starting c2f serve")
        with run_server(root, redis_url=redis.url, reload_seconds=0.2, extra_env=SERVICE_ENV) as (_, base):
            load = Load(base)
            load.start()
            ctx = Context(base=base, root=root, load=load, redis=redis, settings=settings, worker=worker)
            try:
                for name in scenarios:
                    progress(f"{name} ({shares[name]:.0f} s)")
                    t = time.monotonic()
                    results[name] = RUNNERS[name](ctx, shares[name])
                    results[name]["seconds"] = round(time.monotonic() - t, 1)
            finally:
                load.stop()
    finally:
        if worker is not None:
            stop_process(worker)
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "command": "python benchmarks/chaos.py " + " ".join(sys.argv[1:]),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine().describe(),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "duration": duration,
        "scenarios": results,
    }


def render(report: dict[str, Any]) -> str:
    lines = [
        "| scenario | s | requests | errors | p99 ms | detect s (median / max) | ok | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["scenarios"].items():
        d = r["detect"]
        detect = "-" if not d["events"] else f"{d['median_s']} / {d['max_s']} ({d['detected']}/{d['events']})"
        if "recover_s" in r:
            detect += f"; recover {r['recover_s']}"
        lines.append(
            f"| {name} | {r['seconds']} | {r['requests']} | {r['errors']} | {r['p99_ms']} | {detect} | "
            f"{'yes' if r['ok'] else '**no**'} | {r['notes']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of scenarios in all (default 60)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset, run in order")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH ('-': stdout only)")
    args = parser.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}")

    def say(msg: str) -> None:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    report = run(names, args.duration, progress=say)
    text = json.dumps(report, indent=2)
    if args.json == "-":
        print(text)
    else:
        print(render(report))
        if args.json:
            Path(args.json).write_text(text + "\n")
    return 0 if all(r["ok"] for r in report["scenarios"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
