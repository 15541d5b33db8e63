"""Serving benchmark on Gowalla: in-process µs per recommend, then HTTP latency/throughput of ``c2f serve`` under wrk.

    python benchmarks/serve_bench.py                        # trains a 2-epoch c2f artifact into a temp dir first
    python benchmarks/serve_bench.py --artifact ROOT --append

1. In process, over the same random users (after warm-up), one call per user, ``exclude_seen`` on, at n=20 and
   n=100: ``Recommender(artifact, "compressed")`` vs ``Recommender(artifact, "exact")`` vs a plain numpy dense
   baseline (``H_full @ h_u`` + argpartition) vs FAISS ``IndexFlatIP`` when ``faiss`` is importable.  BLAS/OpenMP
   threads are limited to ``--threads`` (default 1: one request per core, as a server would run them).  A stage
   breakdown of the Recommender's paths (embedding, scoring, masking, top-n) says where the time goes.  This part
   times the service's scorer itself, so it imports it (tests/test_import_graph.py allows that here).
2. Over HTTP: ``c2f serve`` in a subprocess (``C2F_REDIS_URL`` set, so no embedded Redis/worker) on a free
   loopback port, loaded by ``wrk`` (https://github.com/wg/wrk; Debian's ``wrk`` package) with a Lua script that
   cycles ``GET /recommend/{user}?n=20`` through the users and prints its summary as JSON: a paced run at
   ``--rate`` req/s (``--paced-connections`` connections, each leaving exponential gaps between its requests: wrk's
   ``delay()`` hook), then a closed loop at full speed (``--concurrency`` connections); the server's RSS, CPU per
   request and collector pauses.  **wrk is a closed-loop generator**: a connection sends its next request only
   once the last one has answered, so a stalled response delays the requests queued behind it without their wait
   being counted (coordinated omission); the paced run's p99 is a lower bound on what an open loop at that rate
   would measure.  Without wrk the HTTP part says how to install it and is skipped.
3. A markdown table on stdout; ``--append`` adds it to BENCHMARKS.md with the command, machine, date and load.

The load generator runs on the same cores as the server; the results say so.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

import c2f
from benchmarks.common import DATA, ROOT, c2f_command, c2f_env, machine
from benchmarks.net import free_port
from c2f.contract.artifact import Artifact, latest_version, load_artifact, version_path
from c2f.contract.methods import exact_embeddings
from c2f.service.scoring import Recommender, top_n

GOWALLA = DATA / "gowalla"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
TARGET_SPEEDUP = 5.0  # compressed vs dense at n=20
TARGET_P99_MS = 10.0  # at 500 req/s
TARGET_RSS_MB = 200.0


# ----------------------------------------------------------------------------------------------------------------
# machine and artifact
# ----------------------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """nproc, CPU model, load average, date, versions (from :func:`benchmarks.common.machine`)."""
    here = machine()
    return {
        "nproc": here.usable_cores,
        "cpu": here.cpu,
        "loadavg": os.getloadavg(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": here.python,
        "numpy": here.numpy,
    }


def train_artifact(dataset: str, out_root: str | Path, *, epochs: int = 2) -> Path:
    """``c2f train DATASET --method c2f --epochs N --out ROOT`` in a subprocess; returns ROOT.

    A subprocess keeps torch and the training heap out of the load generator: a gen-2 garbage collection over
    the ~440k objects training leaves behind paused this process for ~200 ms and showed up as server p99.
    """
    cmd = c2f_command("train", str(dataset), "--method", "c2f", "--epochs", str(epochs), "--out", str(out_root))
    subprocess.run(cmd, env=c2f_env(), check=True, stdout=sys.stderr)
    return Path(out_root)


def resolve_artifact(path: str | Path) -> tuple[Path, Path]:
    """(artifact root, version directory) for a root (uses LATEST) or a version directory LATEST points to."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        root = path.parent.parent
        if latest_version(root) != path.name:
            raise SystemExit(f"{path} is not what {root}/LATEST names; pass the artifact root instead")
        return root, path
    version = latest_version(path)
    if version is None:
        raise SystemExit(f"no published version under {path}")
    return path, version_path(path, version)


# ----------------------------------------------------------------------------------------------------------------
# in-process timing
# ----------------------------------------------------------------------------------------------------------------
def summarize(samples_us: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50, p99, mean and max of a list of timings (same unit in and out)."""
    arr = np.asarray(samples_us, dtype=np.float64)
    if arr.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "mean": float("nan"), "max": float("nan"), "count": 0}
    return {
        "p50": float(np.percentile(arr, 50)),
        "p99": float(np.percentile(arr, 99)),
        "mean": float(arr.mean()),
        "max": float(arr.max()),
        "count": int(arr.size),
    }


def time_calls(fn: Callable[[int], object], users: Sequence[int], warmup: int = 200) -> np.ndarray:
    """µs per ``fn(user)`` call, after ``warmup`` untimed calls on the first users."""
    for u in list(users)[: max(0, warmup)]:
        fn(int(u))
    out = np.empty(len(users), dtype=np.float64)
    clock = time.perf_counter_ns
    for k, u in enumerate(users):
        t0 = clock()
        fn(int(u))
        out[k] = (clock() - t0) / 1e3
    return out


class DenseBaseline:
    """The obvious numpy server: ``items @ h_u``, seen items to -inf, argpartition, sort the n."""

    def __init__(self, table: np.ndarray, n_users: int, seen: tuple[np.ndarray, np.ndarray]) -> None:
        self.users = np.ascontiguousarray(table[:n_users], dtype=np.float32)
        self.items = np.ascontiguousarray(table[n_users:], dtype=np.float32)
        self.indptr, self.indices = seen

    def recommend(self, u: int, n: int = 20) -> np.ndarray:
        s = self.items @ self.users[u]
        s[self.indices[self.indptr[u] : self.indptr[u + 1]]] = -np.inf
        top = np.argpartition(s, s.shape[0] - n)[-n:]
        return top[np.argsort(-s[top])]


class FaissBaseline:
    """FAISS exact inner-product search (IndexFlatIP); asks for n + #seen and drops the seen items."""

    def __init__(self, table: np.ndarray, n_users: int, seen: tuple[np.ndarray, np.ndarray], threads: int) -> None:
        import faiss

        faiss.omp_set_num_threads(threads)
        self.users = np.ascontiguousarray(table[:n_users], dtype=np.float32)
        items = np.ascontiguousarray(table[n_users:], dtype=np.float32)
        self.index = faiss.IndexFlatIP(items.shape[1])
        self.index.add(items)
        self.indptr, self.indices = seen

    def recommend(self, u: int, n: int = 20) -> np.ndarray:
        seen = self.indices[self.indptr[u] : self.indptr[u + 1]]
        _, found = self.index.search(self.users[u : u + 1], n + seen.size)
        found = found[0]
        return found[~np.isin(found, seen)][:n]


def seen_csr(arrays: Any, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """graph ∪ held-out interactions of every user as one CSR (indptr, indices) — what exclude_seen masks."""
    gp, gi = np.asarray(arrays["graph_indptr"]), np.asarray(arrays["graph_indices"])
    hp, hi = np.asarray(arrays["heldout_indptr"]), np.asarray(arrays["heldout_indices"])
    counts = np.diff(gp) + np.diff(hp)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    for u in range(n_users):
        g = gi[gp[u] : gp[u + 1]]
        indices[indptr[u] : indptr[u] + g.size] = g
        indices[indptr[u] + g.size : indptr[u + 1]] = hi[hp[u] : hp[u + 1]]
    return indptr, indices


def stage_breakdown(rec: Recommender, users: Sequence[int], n: int, warmup: int = 50) -> dict[str, dict[str, float]]:
    """µs per stage of ``Recommender.recommend`` (embedding, item scores, seen mask, top-n) through its public API."""
    stages: dict[str, list[float]] = {"user embedding": [], "item scores": [], "mask seen": [], "top-n": []}
    clock = time.perf_counter_ns
    for k, u in enumerate(list(users[:warmup]) + list(users)):
        t0 = clock()
        vec = rec.user_embeddings(np.array([u], dtype=np.int64))
        t1 = clock()
        s = rec.scores_for_vectors(vec)[0]
        t2 = clock()
        s[rec.seen_items(int(u))] = -np.inf
        t3 = clock()
        top_n(s, n)
        t4 = clock()
        if k >= warmup:
            for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                stages[name].append(dt / 1e3)
    return {name: summarize(v) for name, v in stages.items()}


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        yield
        return
    with threadpool_limits(limits=threads):
        yield


@dataclass
class InProcessResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # method, n, p50, p99, mean (µs)
    stages: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # mode -> stage -> summary
    notes: list[str] = field(default_factory=list)
    load_seconds: dict[str, float] = field(default_factory=dict)


def inprocess_bench(
    artifact: Artifact,
    *,
    n_users: int = 2000,
    ns: Sequence[int] = (20, 100),
    warmup: int = 200,
    threads: int = 1,
    seed: int = 0,
    use_faiss: bool = True,
    progress: Callable[[str], None] = lambda msg: None,
) -> InProcessResult:
    """Time every serving path on the same random users; see the module docstring."""
    result = InProcessResult()
    rng = np.random.default_rng(seed)
    users = rng.choice(artifact.n_users, size=min(n_users, artifact.n_users), replace=False).tolist()
    seen = seen_csr(artifact.arrays, artifact.n_users)
    with limited_threads(threads):
        t0 = time.perf_counter()
        compressed = Recommender(artifact, "compressed")
        result.load_seconds["compressed"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact = Recommender(artifact, "exact")
        result.load_seconds["exact"] = time.perf_counter() - t0
        table = (
            np.asarray(artifact.arrays[artifact.spec.table])
            if not artifact.spec.compressed
            else exact_embeddings(artifact.arrays, artifact.manifest)
        )
        dense = DenseBaseline(table, artifact.n_users, seen)
        paths: dict[str, Callable[[int, int], object]] = {
            f"Recommender compressed ({compressed.scoring})": lambda u, n: compressed.recommend(u, n),
            f"Recommender exact ({exact.scoring})": lambda u, n: exact.recommend(u, n),
            "numpy dense baseline (H_full @ h_u + argpartition)": dense.recommend,
        }
        if use_faiss:
            try:
                faiss_index = FaissBaseline(table, artifact.n_users, seen, threads)
                paths["FAISS IndexFlatIP (exact IP, n+#seen then filter)"] = faiss_index.recommend
            except ImportError:
                result.notes.append("FAISS: not importable, skipped.")
        else:
            result.notes.append("FAISS: disabled (--no-faiss).")
        for n in ns:
            for name, fn in paths.items():
                progress(f"in-process: {name}, n={n}")
                samples = time_calls(lambda u, fn=fn, n=n: fn(u, n), users, warmup=warmup)  # type: ignore[misc]
                result.rows.append({"method": name, "n": n, **summarize(samples)})
        n0 = ns[0]
        for label, rec in (("compressed", compressed), ("exact", exact)):
            progress(f"in-process: stage breakdown {label}")
            result.stages[label] = stage_breakdown(rec, users, n0, warmup=min(warmup, 50))
    return result


def speedup(rows: Sequence[dict[str, Any]], n: int, fast: str, slow: str, stat: str = "mean") -> float | None:
    """slow/fast ratio of ``stat`` at ``n`` for the first methods whose names start with ``fast`` / ``slow``."""

    def pick(prefix: str) -> float | None:
        for r in rows:
            if r["n"] == n and r["method"].startswith(prefix):
                return float(r[stat])
        return None

    a, b = pick(fast), pick(slow)
    return None if a is None or b is None or a <= 0 else b / a


# ----------------------------------------------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def run_server(
    artifact_root: str | Path,
    *,
    mode: str = "compressed",
    redis_url: str = "redis://127.0.0.1:6379/14",
    log_level: str = "warning",
    ready_timeout: float = 180.0,
    log_path: str | Path | None = None,
    workers: int = 1,
    reload_seconds: float = 0,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``c2f serve`` on a free loopback port; yields (process, base URL) once /health/ready answers 200.
    ``extra_env``: more ``C2F_*`` settings."""
    port = free_port()
    env = c2f_env(
        {
            "C2F_ARTIFACT_ROOT": str(artifact_root),
            "C2F_REDIS_URL": redis_url,
            "C2F_SERVING_MODE": mode,
            "C2F_LOG_LEVEL": log_level,
            "C2F_RELOAD_SECONDS": str(reload_seconds),
            **(extra_env or {}),
        }
    )
    cmd = c2f_command("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers))
    log_file = open(log_path, "wb") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                log_file.seek(0)
                tail = log_file.read()[-3000:].decode(errors="replace")
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready:\n{tail}")
            with contextlib.suppress(OSError), urllib.request.urlopen(base + "/health/ready", timeout=2) as resp:
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout:.0f} s")
            time.sleep(0.2)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log_file.close()


def smaps_rollup(pid: int) -> dict[str, float]:
    """Rss, Pss (shared pages divided among the processes sharing them) and Private (Private_Clean +
    Private_Dirty: pages no other process maps) of ``pid`` from ``/proc/<pid>/smaps_rollup``, MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            fields[name.strip()] = int(parts[0]) / 1024
    return {
        "rss_mb": fields.get("Rss", 0.0),
        "pss_mb": fields.get("Pss", 0.0),
        "private_mb": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
    }


def _tree_memory(pid: int) -> list[dict[str, Any]]:
    """:func:`smaps_rollup` of ``pid`` (role "parent") and of every descendant (role "server")."""
    import psutil

    rows = [{"pid": pid, "role": "parent", **smaps_rollup(pid)}]
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError):
            rows.append({"pid": child.pid, "role": "server", **smaps_rollup(child.pid)})
    return rows


def _spread_requests(base: str, user_ids: Sequence[str], count: int) -> set[str]:
    """``count`` GET /recommend on fresh connections (the kernel hands them to the processes in turn); the
    model versions answered."""
    versions = set()
    for i in range(count):
        url = f"{base}/recommend/{urllib.parse.quote(user_ids[i % len(user_ids)], safe='')}?n=20"
        with urllib.request.urlopen(url, timeout=30) as resp:
            versions.add(json.loads(resp.read())["model_version"])
    return versions


def worker_memory(
    artifact_root: str | Path, workers: int, redis_url: str, *, requests: int = 300, swap: bool = False
) -> dict[str, Any]:
    """``c2f serve --workers N``: Rss, Pss and Private memory of the parent and of each server process it forked
    (none for N = 1: the parent serves), MB, after ``requests`` recommendations spread over fresh connections and,
    with ``swap``, again after a new version (the same model republished: ``Model.save``) was hot-swapped in by every
    process."""
    root = Path(artifact_root)
    model = c2f.load(root)
    user_ids = [str(u) for u in model.user_ids[:1000]]
    phases: dict[str, list[dict[str, Any]]] = {}
    with run_server(root, redis_url=redis_url, workers=workers, reload_seconds=0.5 if swap else 0) as (proc, base):
        time.sleep(3)  # /health/ready answered from one process; the others start too
        _spread_requests(base, user_ids, requests)
        time.sleep(1)
        phases["after requests"] = _tree_memory(proc.pid)
        if swap:
            new = model.save(root)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # every process polls LATEST; wait until a spread answers `new` only
                time.sleep(2)
                if _spread_requests(base, user_ids, 4 * workers) == {new}:
                    break
            time.sleep(3)
            _spread_requests(base, user_ids, requests)
            time.sleep(1)
            phases["after a hot swap"] = _tree_memory(proc.pid)
    del model
    return {"workers": workers, "phases": phases}


def print_worker_memory(results: Sequence[dict[str, Any]]) -> None:
    """One block per run and phase: each process, the totals, and the total Pss over the 1-process run's."""
    base: dict[str, float] = {}
    for res in results:
        for phase, rows in res["phases"].items():
            total_pss = sum(r["pss_mb"] for r in rows)
            total_rss = sum(r["rss_mb"] for r in rows)
            if res["workers"] == 1:
                base[phase] = total_pss
            print(f"--workers {res['workers']}, {phase}:")
            for r in rows:
                print(
                    f"    {r['role']:6s} pid {r['pid']}: Rss {r['rss_mb']:.1f} MB, Pss {r['pss_mb']:.1f} MB, "
                    f"Private {r['private_mb']:.1f} MB"
                )
            extra = ""
            if res["workers"] > 1 and phase in base:
                per = (total_pss - base[phase]) / (res["workers"] - 1)
                extra = f"; over --workers 1: {total_pss - base[phase]:+.1f} MB = {per:.1f} MB per extra worker"
            print(f"    total: Pss {total_pss:.1f} MB, Rss {total_rss:.1f} MB{extra}")


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` and its children, MB."""
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total / 2**20


class CpuMeter:
    """CPU seconds of the server process and of the load generator (this process plus waited children: wrk)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._proc = psutil.Process(pid)
        self.server_s = self.client_s = self.wall_s = 0.0

    def _now(self) -> tuple[float, float, float]:
        t = self._proc.cpu_times()
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        return t.user + t.system, client, time.perf_counter()

    def start(self) -> None:
        self._t0 = self._now()

    def stop(self) -> None:
        t1 = self._now()
        self.server_s, self.client_s, self.wall_s = (b - a for a, b in zip(self._t0, t1, strict=True))

    def per_request(self, requests: int) -> dict[str, float]:
        """Server CPU ms per request and the CPU (in cores) the server and the client used during the run."""
        wall = max(self.wall_s, 1e-9)
        return {
            "server_cpu_ms_per_req": 1e3 * self.server_s / max(1, requests),
            "server_cores": self.server_s / wall,
            "client_cores": self.client_s / wall,
        }


@contextlib.contextmanager
def cpu_meter(pid: int) -> Iterator[CpuMeter]:
    meter = CpuMeter(pid)
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()


# ----------------------------------------------------------------------------------------------------------------
# load generator: wrk
# ----------------------------------------------------------------------------------------------------------------
WRK_MISSING = (
    "wrk is not installed, so the HTTP part is skipped: install it (Debian/Ubuntu: apt-get install wrk; macOS: "
    "brew install wrk; https://github.com/wg/wrk) or pass --skip-http"
)
WRK_MARKER = "C2F_WRK "  # the line the script's done() prints: its summary as JSON
# wrk's error counts -> the names the report gives them ("status": responses with a status of 400 or more)
WRK_ERRORS = {"status": "HTTP >= 400", "connect": "connect", "read": "read", "write": "write", "timeout": "timeout"}

# %(paths)s: a Lua list of request paths; %(bodies)s: a Lua list of JSON bodies, empty for GETs (else one POST body per
# path); %(pace_ms)s: the mean gap (ms) a connection leaves before each request, 0 for none. Each wrk thread has its
# own Lua state: with one thread, every connection takes the next path in turn.
WRK_SCRIPT = r"""
local paths = {%(paths)s}
local bodies = {%(bodies)s}
local pace_ms = %(pace_ms)s
local i = 0
local json = {["Content-Type"] = "application/json"}
request = function()
  i = i + 1
  local k = (i %% #paths) + 1
  if #bodies > 0 then
    return wrk.format("POST", paths[k], json, bodies[k])
  end
  return wrk.format("GET", paths[k])
end
if pace_ms > 0 then
  -- exponential gaps (Poisson arrivals per connection), rounded to whole ms at random so that the mean is kept
  delay = function()
    local gap = -pace_ms * math.log(1 - math.random())
    return math.floor(gap + math.random())
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, "write": %%d, '
    .. '"status": %%d, "timeout": %%d, "mean_us": %%.3f, "max_us": %%d, "p50_us": %%d, "p90_us": %%d, '
    .. '"p99_us": %%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def _lua_strings(values: Sequence[str]) -> str:
    return ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)


def wrk_script(paths: Sequence[str], pace_ms: float = 0.0, bodies: Sequence[str] | None = None) -> str:
    """The Lua script of a run: GET ``paths`` in turn (POST ``bodies[k]`` to ``paths[k]`` when bodies are given);
    with ``pace_ms`` > 0 each connection first waits an exponential gap of that mean (wrk's ``delay()`` hook);
    ``done()`` prints the summary as one JSON line."""
    return WRK_SCRIPT % {
        "paths": _lua_strings(paths),
        "bodies": _lua_strings(bodies or []),
        "pace_ms": repr(float(pace_ms)),
        "marker": WRK_MARKER,
    }


def parse_wrk_summary(output: str) -> dict[str, Any]:
    """A run's figures from wrk's stdout (the script's JSON line): requests, errors by kind, req/s and latency in
    ms (p50, p90, p99, mean, max; wrk records every response's, from the request's write to its response)."""
    line = next((x for x in output.splitlines() if x.startswith(WRK_MARKER)), None)
    if line is None:
        raise ValueError(f"no {WRK_MARKER.strip()} line in wrk's output: {output[-2000:]!r}")
    raw = json.loads(line[len(WRK_MARKER) :])
    kinds = {label: int(raw[key]) for key, label in WRK_ERRORS.items() if raw[key]}
    elapsed = raw["duration_us"] / 1e6
    requests = int(raw["requests"])
    return {
        "sent": requests,
        "ok": requests - int(raw["status"]),
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "achieved_rps": requests / elapsed if elapsed > 0 else float("nan"),
        "p50_ms": raw["p50_us"] / 1e3,
        "p90_ms": raw["p90_us"] / 1e3,
        "p99_ms": raw["p99_us"] / 1e3,
        "mean_ms": raw["mean_us"] / 1e3,
        "max_ms": raw["max_us"] / 1e3,
        "elapsed_s": elapsed,
    }


def wrk_run(
    base_url: str,
    paths: Sequence[str],
    *,
    connections: int,
    duration: float,
    rate: float | None = None,
    threads: int = 1,
    timeout: float = 5.0,
    bodies: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``wrk`` against ``base_url`` for ``duration`` seconds (whole seconds, at least 1: wrk's unit), cycling through
    ``paths`` on ``connections`` keep-alive connections.

    Without ``rate``: closed loop, every connection sends its next request as soon as the last one answered (the
    maximum throughput). With ``rate``: each connection waits an exponential gap of mean ``connections / rate``
    seconds before each request, so that about ``rate`` req/s arrive; still a closed loop per connection: a slow
    response delays the requests behind it, and the time they would have waited is not counted (coordinated
    omission), so its tail latency is a lower bound on an open loop's. A response slower than ``timeout`` counts as
    an error. ``bodies``: JSON bodies POSTed to ``paths[k]`` (one per path) instead of GETs.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise FileNotFoundError(WRK_MISSING)
    pace_ms = 1e3 * connections / rate if rate else 0.0
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(wrk_script(paths, pace_ms, bodies))
        lua = fh.name
    seconds = max(1, round(duration))
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={max(1, round(timeout))}s"]
    try:
        done = subprocess.run(
            [*cmd, "-s", lua, base_url], capture_output=True, text=True, timeout=seconds + timeout + 60, check=False
        )
    finally:
        os.unlink(lua)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr[-2000:] or done.stdout[-2000:]}")
    result = parse_wrk_summary(done.stdout)
    result.update({"connections": connections, "client": f"wrk -t{threads}", "offered_rps": rate})
    return result


def recommend_paths(user_ids: Sequence[str], n: int = 20) -> list[str]:
    return [f"/recommend/{urllib.parse.quote(str(u), safe='')}?n={n}" for u in user_ids]


def gc_pauses(base: str) -> dict[str, float]:
    """The server's garbage-collector pauses so far (``c2f_python_gc_pause_seconds`` on /metrics): count, total
    seconds, how many took over 10 ms, and the longest."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {"count": 0.0, "seconds": 0.0, "over_10ms": 0.0, "max_seconds": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "c2f_python_gc_pause_seconds_count":
                out["count"] += sample.value
            elif sample.name == "c2f_python_gc_pause_seconds_sum":
                out["seconds"] += sample.value
            elif sample.name == "c2f_python_gc_pause_seconds_bucket" and sample.labels.get("le") == "0.01":
                out["over_10ms"] -= sample.value
            elif sample.name == "c2f_python_gc_pause_seconds_bucket" and sample.labels.get("le") == "+Inf":
                out["over_10ms"] += sample.value
            elif sample.name == "c2f_python_gc_pause_max_seconds":
                out["max_seconds"] = sample.value
    return out


def http_bench(
    artifact_root: str | Path,
    user_ids: Sequence[str],
    *,
    rate: float = 500.0,
    duration: float = 20.0,
    closed_duration: float = 10.0,
    concurrency: int = 8,
    paced_connections: int = 32,
    mode: str = "compressed",
    redis_url: str = "redis://127.0.0.1:6379/14",
    progress: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Start the server, warm it up, run ``wrk`` paced at ``rate`` req/s, then closed loop at full speed
    (:func:`wrk_run`); the server's RSS, CPU and collector pauses around them. FileNotFoundError (saying how to
    install it) when wrk is not installed."""
    if shutil.which("wrk") is None:
        raise FileNotFoundError(WRK_MISSING)
    paths = recommend_paths(user_ids)
    out: dict[str, Any] = {"mode": mode}
    started = time.perf_counter()
    with run_server(artifact_root, mode=mode, redis_url=redis_url) as (proc, base):
        out["ready_seconds"] = time.perf_counter() - started
        out["rss_ready_mb"] = rss_mb(proc.pid)
        progress(f"http: server ready at {base} in {out['ready_seconds']:.1f} s; warm-up")
        wrk_run(base, paths, connections=2, duration=min(2.0, closed_duration))
        progress(f"http: paced at {rate:.0f} req/s, {paced_connections} connections, {duration:.0f} s")
        gc_before = gc_pauses(base)
        with cpu_meter(proc.pid) as cpu:
            out["paced"] = wrk_run(base, paths, connections=paced_connections, duration=duration, rate=rate)
        out["paced"].update(cpu.per_request(out["paced"]["sent"]))
        # the server's collector pauses during the paced run: a p99/max stall with none over 10 ms is not the GC's
        gc_after = gc_pauses(base)
        out["paced"]["server_gc"] = {key: gc_after[key] - gc_before[key] for key in ("count", "seconds", "over_10ms")}
        out["paced"]["server_gc"]["max_seconds_since_start"] = gc_after["max_seconds"]
        progress(f"http: server GC during the paced run: {out['paced']['server_gc']}")
        out["rss_after_paced_mb"] = rss_mb(proc.pid)
        progress(f"http: closed loop, {concurrency} connections, {closed_duration:.0f} s")
        with cpu_meter(proc.pid) as cpu:
            out["closed"] = wrk_run(base, paths, connections=concurrency, duration=closed_duration)
        out["closed"].update(cpu.per_request(out["closed"]["sent"]))
        out["rss_after_mb"] = rss_mb(proc.pid)
    return out


# ----------------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 0) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:,.{digits}f}"


def render_markdown(
    *,
    command: str,
    machine: dict[str, Any],
    artifact: Artifact,
    trained_epochs: int | None,
    inproc: InProcessResult | None,
    http: dict[str, Any] | None,
    threads: int,
    load_end: tuple[float, float, float] | None = None,
    http_skipped: str | None = None,
) -> str:
    la = machine["loadavg"]
    lines = [
        "",
        f"### Serving benchmark (Gowalla), {machine['date']}",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine['nproc']} cores (nproc), {machine['cpu']}; Python {machine['python']}, "
        f"numpy {machine['numpy']}  ",
        f"Other load: load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (1/5/15 min) at start"
        + (
            f", {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} at the end (this run's own load included)"
            if load_end
            else ""
        )
        + f" on {machine['nproc']} cores"
        + (" -- the machine was busy with other work; treat the numbers as pessimistic" if la[0] > 0.5 else "")
        + ".  ",
    ]
    shape = artifact.manifest.shape
    lines.append(
        f"Artifact: `{artifact.version}` ({artifact.method}, {artifact.n_users:,} users × {artifact.n_items:,} items, "
        f"d={artifact.d}, m_c={shape.m_c}, t_c={shape.t_c})"
        + (
            f"; trained by this script (`c2f train --method c2f --epochs {trained_epochs}`) -- its recommendation "
            "quality is poor and irrelevant for latency."
            if trained_epochs is not None
            else "."
        )
    )
    if inproc is not None:
        lines += [
            "",
            f"In process: one `recommend` call per user, exclude_seen on, {inproc.rows[0]['count']:,} random users "
            f"after warm-up, BLAS/OpenMP threads limited to {threads}. µs per call.",
            "",
            "| path | n | p50 µs | p99 µs | mean µs |",
            "|---|---|---|---|---|",
        ]
        for r in inproc.rows:
            lines.append(f"| {r['method']} | {r['n']} | {_f(r['p50'])} | {_f(r['p99'])} | {_f(r['mean'])} |")
        lines += [
            "",
            f"Where the Recommender's time goes at n={inproc.rows[0]['n']} (p50 / mean µs per stage, public API):",
            "",
            "| mode | " + " | ".join(next(iter(inproc.stages.values())).keys()) + " |",
            "|---|" + "---|" * len(next(iter(inproc.stages.values()))),
        ]
        for mode, stages in inproc.stages.items():
            cells = " | ".join(f"{_f(s['p50'])} / {_f(s['mean'])}" for s in stages.values())
            lines.append(f"| {mode} | {cells} |")
        n0 = inproc.rows[0]["n"]
        sp_mean = speedup(inproc.rows, n0, "Recommender compressed", "numpy dense")
        sp_p50 = speedup(inproc.rows, n0, "Recommender compressed", "numpy dense", "p50")
        met = sp_mean is not None and sp_mean >= TARGET_SPEEDUP
        lines += [
            "",
            f"Target compressed ≥ {TARGET_SPEEDUP:.0f}× faster than dense at n={n0}: "
            f"**{'met' if met else 'not met'}** (dense/compressed = {_f(sp_mean, 2)}× on the mean, "
            f"{_f(sp_p50, 2)}× on p50).  Recommender construction: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in inproc.load_seconds.items())
            + ".",
        ]
        lines += [f"{note}  " for note in inproc.notes]
    if http is not None:
        o, c = http["paced"], http["closed"]
        lines += [
            "",
            f"HTTP: `c2f serve` (uvicorn, 1 process, serving_mode={http['mode']}, log level warning, "
            "C2F_REDIS_URL set so no embedded Redis/worker), `GET /recommend/{user}?n=20` over loopback, "
            f"cycling through the same users, load from `wrk`. **The load generator runs on the same "
            f"{machine['nproc']} cores as the server.** wrk is a closed loop: a connection sends its next request "
            "only once the last one has answered, so a stall delays the requests behind it without counting their "
            "wait (coordinated omission); the paced run's connections leave exponential gaps (wrk's `delay()`) for "
            "about the offered rate, and its p99 is a lower bound on an open loop's.",
            "",
            "| run | client | conns | offered req/s | achieved req/s | requests | errors | p50 ms | p99 ms | max ms "
            "| server CPU ms/req | server cores | client cores |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| paced {o['elapsed_s']:.0f} s | {o['client']} | {o['connections']} | {_f(o['offered_rps'])} | "
            f"{_f(o['achieved_rps'])} | {o['sent']:,} | {o['errors']} | {_f(o['p50_ms'], 2)} | "
            f"{_f(o['p99_ms'], 2)} | {_f(o['max_ms'], 1)} | {_f(o.get('server_cpu_ms_per_req'), 2)} | "
            f"{_f(o.get('server_cores'), 2)} | {_f(o.get('client_cores'), 2)} |",
            f"| closed loop {c['elapsed_s']:.0f} s | {c['client']} | {c['connections']} | max | "
            f"{_f(c['achieved_rps'])} | {c['sent']:,} | {c['errors']} | {_f(c['p50_ms'], 2)} | "
            f"{_f(c['p99_ms'], 2)} | {_f(c['max_ms'], 1)} | {_f(c.get('server_cpu_ms_per_req'), 2)} | "
            f"{_f(c.get('server_cores'), 2)} | {_f(c.get('client_cores'), 2)} |",
            "",
            f"Server RSS: {http['rss_ready_mb']:.0f} MB when ready, {http['rss_after_paced_mb']:.0f} MB after the "
            f"paced run, {http['rss_after_mb']:.0f} MB after all load (ready in {http['ready_seconds']:.1f} s).  ",
            f"Targets: p99 ≤ {TARGET_P99_MS:.0f} ms at {o['offered_rps']:.0f} req/s (paced, closed loop): "
            f"**{'met' if o['p99_ms'] <= TARGET_P99_MS and o['errors'] == 0 else 'not met'}** "
            f"({_f(o['p99_ms'], 2)} ms, {o['errors']} errors); RSS ≤ {TARGET_RSS_MB:.0f} MB: "
            f"**{'met' if http['rss_after_mb'] <= TARGET_RSS_MB else 'not met'}** ({http['rss_after_mb']:.0f} MB).",
        ]
        if o["error_kinds"] or c["error_kinds"]:
            lines.append(f"Errors by kind: paced {o['error_kinds']}, closed {c['error_kinds']}.")
    elif http_skipped:
        lines += ["", f"HTTP: {http_skipped}."]
    return "\n".join(lines) + "\n"


def append_markdown(text: str, path: Path = BENCHMARKS_MD) -> None:
    """Append ``text`` to ``path`` (created with a one-line title when absent); never rewrites what is there."""
    if not path.exists():
        path.write_text("# c2f benchmarks\n")
    with path.open("a") as fh:
        fh.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", help="artifact root (or a version directory LATEST names); default: train one")
    parser.add_argument("--dataset", default=str(GOWALLA), help="dataset to train on when --artifact is not given")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the self-trained artifact")
    parser.add_argument("--users", type=int, default=2000, help="random users timed in process")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads in process")
    parser.add_argument("--rate", type=float, default=500.0, help="req/s offered by the paced run")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the paced run (whole seconds)")
    parser.add_argument("--closed-duration", type=float, default=10.0, help="seconds of the closed loop")
    parser.add_argument("--concurrency", type=int, default=8, help="closed-loop connections")
    parser.add_argument("--paced-connections", type=int, default=32, help="connections of the paced run")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--skip-http", action="store_true", help="no HTTP part (it needs wrk)")
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    parser.add_argument(
        "--workers-memory",
        type=int,
        default=0,
        metavar="N",
        help="only measure the memory of `c2f serve --workers 1, 2 and N`'s processes (needs --artifact) and exit",
    )
    parser.add_argument(
        "--swap",
        action="store_true",
        help="with --workers-memory: also measure after a hot swap (publishes a copy of LATEST into --artifact)",
    )
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[serve_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    if args.workers_memory:
        root, _ = resolve_artifact(args.artifact)
        counts = sorted({1, min(2, args.workers_memory), args.workers_memory})
        print_worker_memory([worker_memory(root, n, args.redis_url, swap=args.swap) for n in counts])
        return 0
    command = "python benchmarks/serve_bench.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    machine = machine_info()
    la = machine["loadavg"]
    say(f"{machine['nproc']} cores, {machine['cpu']}, load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")

    with contextlib.ExitStack() as stack:
        trained_here = args.artifact is None
        if trained_here:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="c2f-serve-bench-"))
            say(f"training a c2f artifact ({args.epochs} epochs) on {args.dataset} into {tmp}")
            t0 = time.perf_counter()
            root = train_artifact(args.dataset, tmp, epochs=args.epochs)
            say(f"trained in {time.perf_counter() - t0:.0f} s")
            _, vdir = resolve_artifact(root)
        else:
            root, vdir = resolve_artifact(args.artifact)
        artifact = load_artifact(vdir)
        gc.collect()
        gc.freeze()  # no long gen-2 collections in the timed loops or the load generator
        say(f"artifact {artifact.version}: {artifact.n_users} users, {artifact.n_items} items, d={artifact.d}")

        inproc = None
        if not args.skip_inprocess:
            inproc = inprocess_bench(
                artifact,
                n_users=args.users,
                warmup=args.warmup,
                threads=args.threads,
                use_faiss=not args.no_faiss,
                progress=say,
            )
        http = None
        http_skipped = None
        if not args.skip_http and shutil.which("wrk") is None:
            http_skipped = WRK_MISSING
            say(WRK_MISSING)
        elif not args.skip_http:
            rng = np.random.default_rng(1)
            picks = rng.choice(artifact.n_users, size=min(args.users, artifact.n_users), replace=False)
            user_ids = [str(artifact.arrays["user_ids"][u]) for u in picks]
            http = http_bench(
                root,
                user_ids,
                rate=args.rate,
                duration=args.duration,
                closed_duration=args.closed_duration,
                concurrency=args.concurrency,
                paced_connections=args.paced_connections,
                redis_url=args.redis_url,
                progress=say,
            )
        text = render_markdown(
            command=command,
            machine=machine,
            artifact=artifact,
            trained_epochs=args.epochs if trained_here else None,
            inproc=inproc,
            http=http,
            threads=args.threads,
            load_end=os.getloadavg(),
            http_skipped=http_skipped,
        )
    print(text)
    if args.append:
        append_markdown(text)
        say(f"appended to {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
