"""`c2f serve --workers N` (jobs.server.Prefork): server processes forked after the model is loaded share its
memory, a killed one is replaced, each follows hot swaps, and SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures import build_artifact
from tests.live import free_port
from tests.service.test_jobs import REPO, wait_for

pytestmark = pytest.mark.slow


def _private_and_rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name] = int(rest.split()[0])
    return fields["Private_Clean"] + fields["Private_Dirty"], fields["Rss"]


def _ready(base: str) -> bool:
    """/health/ready answers 200; False while nothing listens yet (the server processes start after the fork)."""
    try:
        return httpx.get(f"{base}/health/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _versions(base: str, count: int) -> set[str]:
    """Model versions answered over ``count`` fresh connections (spread over the server processes)."""
    seen = set()
    for _ in range(count):
        r = httpx.get(f"{base}/recommend/u1", params={"n": 3}, timeout=10)
        assert r.status_code == 200, r.text
        seen.add(r.json()["model_version"])
    return seen


def test_forked_servers_share_memory_restart_and_follow_swaps(artifact_root: Path) -> None:
    first = build_artifact(artifact_root, "c2f", n_users=2000, n_items=3000, seed=0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "C2F_ARTIFACT_ROOT": str(artifact_root),
        "C2F_REDIS_URL": "redis://127.0.0.1:9/0",  # set: no embedded Redis or worker (and nothing is asked of it)
        "C2F_RELOAD_SECONDS": "0.2",
        "C2F_LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "c2f.cli.main", "serve", "--port", str(port), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[psutil.Process] = []
    try:

        def two_servers() -> list[psutil.Process] | None:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            kids = psutil.Process(proc.pid).children()
            return kids if len(kids) == 2 else None

        children = wait_for(two_servers, 60, "two server processes")
        wait_for(lambda: _ready(base), 60, "readiness")
        assert _versions(base, 10) == {first}
        # Forked after the load: most of a server process's pages (interpreter, imports, the model) are its parent's.
        for child in children:
            private, rss = _private_and_rss_kb(child.pid)
            assert private < rss / 2, (child.pid, private, rss)

        os.kill(children[0].pid, signal.SIGKILL)

        def replaced() -> list[psutil.Process] | None:
            kids = psutil.Process(proc.pid).children()
            pids = {k.pid for k in kids}
            return kids if len(kids) == 2 and children[0].pid not in pids else None

        children = wait_for(replaced, 30, "the killed server process to be replaced")
        second = build_artifact(artifact_root, "c2f", n_users=2000, n_items=3000, seed=1)
        wait_for(lambda: _versions(base, 8) == {second}, 30, "every server process to serve the new version")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
    for child in children:
        assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE
