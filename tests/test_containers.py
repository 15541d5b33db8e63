"""`docker compose up` for real: the Dockerfile's images built and docker-compose.yml run, with podman.

What tests/test_compose_e2e.py imitates with local processes, done with containers. The `api` and `worker`
targets are built as docker-compose.yml builds them (podman's layer cache is kept between runs, so an unchanged
tree rebuilds nothing and a code change only the last layer); the images are checked (no torch in the api, the
non-root user, the health check, nothing of the build's pip inputs left behind); then podman-compose brings the
stack up and the test takes the user's path through the published port: POST /train on a small dataset in the
mounted data directory -> job finished -> GET /recommend/<user>?n=20 from the new version -> GET /footprint.
Finally it stops the worker container mid-job (the job must be reported failed, not left "started") and starts
it again (it takes the next job).

Only what must differ on a machine without Docker and without registry access is overridden
(benchmarks/podman_stack.py): the base images, this machine's pip inputs to the build, the published port and the
data directory. Skips, saying why, where podman cannot run; `.ci/podman-setup` prepares a machine (CI runs it).
Deselect with ``-m "not container"``. Timings and sizes are printed, never asserted: the targets are in
BENCHMARKS.md (benchmarks/compose_bench.py).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("yaml")

from benchmarks.podman_stack import (  # noqa: E402
    ComposeStack,
    Podman,
    PodmanError,
    build_images,
    free_port,
    http,
    unavailable_reason,
    wait_for,
    write_override,
    write_tiny_dataset,
)

# Cold builds take minutes (the worker's torch layer alone); the module's first test carries them.
pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(1800)]

API_CMD = ["c2f", "serve", "--host", "0.0.0.0", "--port", "8000"]
N_USERS = 120
# A small C2F run (both stages, METIS, SparsePCA): about 20 s in the worker container on two cores.
# fine_fallback off: the user's path checked here serves a c2f artifact (on 120 users the fine stage may validate
# below its coarse stage, and the default would then publish the coarse stage as legcf)
C2F_PARAMS = {
    "dim": 16,
    "m_c": 12,
    "m_r": 4,
    "t_r": 2,
    "d_r": 8,
    "epochs": 4,
    "batch_size": 1024,
    "seed": 1,
    "fine_fallback": False,
}
# The same with small batches and no early stop: runs for minutes, long enough to be stopped mid-job.
LONG_PARAMS = {**C2F_PARAMS, "epochs": 300, "patience": 300, "batch_size": 64}
UD_PARAMS = {"dim": 8, "layers": 1, "epochs": 3, "batch_size": 2048, "patience": 1, "seed": 1}
JOB_TIMEOUT = 300.0
START_TIMEOUT = 120.0
RELOAD_TIMEOUT = 60.0
STOPPED_ERROR = "WorkerStopped: the worker was stopped before the job finished; submit the job again"

# What the images must not contain: the build's pip inputs are mounted, never copied.
PROBE = """
import importlib.util, json, os, sys
import c2f
c2f.load  # the Python API resolves (lazily) from the installed package
print(json.dumps({
    "c2f_api_torch_free": "torch" not in sys.modules,
    "uid": os.getuid(),
    "torch": importlib.util.find_spec("torch") is not None,
    "leftovers": [p for p in ("/etc/pip.conf", "/wheels", "/run/secrets/ca.crt", "/run/secrets/pip.conf",
                              "/tmp/src", "/tmp/requirements.txt") if os.path.exists(p)],
    "artifacts_writable": os.access("/artifacts", os.W_OK),
}))
"""


def report(config: pytest.Config, line: str) -> None:
    """A line in pytest's output even with -q (image sizes and timings are what this test is read for)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"[container] {line}")


# ---------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    engine = Podman.configured(tmp_path_factory.mktemp("podman"))
    reason = unavailable_reason(engine)
    if reason:
        pytest.skip(reason)
    return engine


@pytest.fixture(scope="module")
def images(podman: Podman, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> dict[str, str]:
    return build_images(podman, tmp_path_factory.mktemp("build"), lambda line: report(pytestconfig, line))


@dataclass
class Stack:
    url: str
    compose: ComposeStack
    data_dir: Path


@pytest.fixture(scope="module")
def stack(
    podman: Podman, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("stack")
    data_dir = work / "data"
    write_tiny_dataset(data_dir, n_users=N_USERS)
    port = free_port()
    override = write_override(work / "override.yml", images=images, api_port=port, data_dir=data_dir)
    compose = ComposeStack(podman, f"c2ftest{os.getpid()}{uuid.uuid4().hex[:6]}", override, work)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        compose.up()
        wait_for(
            "the api", lambda: http("GET", f"{url}/health/live", timeout=5)[0] == 200, START_TIMEOUT, compose.all_logs
        )
        report(pytestconfig, f"compose up -> /health/live 200 in {time.monotonic() - started:.1f} s")
        yield Stack(url=url, compose=compose, data_dir=data_dir)
    finally:
        compose.down()
        left = compose.leftovers()
        assert not left, f"compose down left {left} behind"


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _probe(podman: Podman, image: str) -> dict[str, Any]:
    out = podman.run("run", "--rm", "--network", "none", image, "python", "-c", PROBE, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def _job(stack: Stack, job_id: str) -> dict[str, Any]:
    status, job = http("GET", f"{stack.url}/jobs/{job_id}", timeout=10)
    assert status == 200, job
    return job  # type: ignore[no-any-return]


def _train(stack: Stack, method: str, params: dict[str, Any]) -> str:
    status, body = http("POST", f"{stack.url}/train", {"dataset_uri": "tiny", "method": method, "params": params})
    assert status == 202, body
    return str(body["job_id"])


def _wait_finished(stack: Stack, job_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = _job(stack, job_id)
        assert job["status"] not in ("failed", "canceled"), f"job {job['status']}: {job.get('error')}"
        return job if job["status"] == "finished" else None

    return wait_for(f"job {job_id}", finished, JOB_TIMEOUT, stack.compose.all_logs, interval=1.0)  # type: ignore[no-any-return]


def _wait_served(stack: Stack, version: str) -> None:
    def serving() -> bool:
        code, body = http("GET", f"{stack.url}/health/ready", timeout=5)
        return code == 200 and body["model_version"] == version

    wait_for(f"the api to serve {version}", serving, RELOAD_TIMEOUT, stack.compose.all_logs)


def _healthcheck(stack: Stack, service: str) -> int:
    """Run the service's compose health check now (podman schedules it with systemd timers, absent here)."""
    return stack.compose.podman.run("healthcheck", "run", stack.compose.container(service), check=False).returncode


# ---------------------------------------------------------------------------------------------------------------
# tests


def test_images(podman: Podman, images: dict[str, str]) -> None:
    api, worker = _probe(podman, images["api"]), _probe(podman, images["worker"])
    assert api["torch"] is False, "the api image must not contain torch"
    assert worker["torch"] is True
    assert api["c2f_api_torch_free"] and worker["c2f_api_torch_free"], "import c2f; c2f.load imported torch"
    for name, probe in (("api", api), ("worker", worker)):
        assert probe["uid"] == 10001, f"{name} runs as uid {probe['uid']}"
        assert probe["leftovers"] == [], f"{name} image keeps build inputs: {probe['leftovers']}"
        assert probe["artifacts_writable"], f"{name}: the non-root user cannot write /artifacts"
    torch_version = podman.run(
        "run",
        "--rm",
        "--network",
        "none",
        images["worker"],
        "python",
        "-c",
        "import torch; print(torch.__version__)",
        timeout=120,
    ).stdout.split()[-1]
    assert torch_version.startswith("2.13.0"), torch_version
    api_image, worker_image = podman.inspect_image(images["api"]), podman.inspect_image(images["worker"])
    assert api_image["Config"]["User"] == worker_image["Config"]["User"] == "10001:10001"
    assert api_image["Config"]["Cmd"] == API_CMD and worker_image["Config"]["Cmd"] == ["c2f", "worker"]
    assert "/health/ready" in " ".join(api_image["Healthcheck"]["Test"])  # kept: built in docker format
    for image in images.values():
        help_text = podman.run("run", "--rm", "--network", "none", image, "c2f", "--help").stdout
        assert "serve" in help_text and "worker" in help_text


def test_compose_train_recommend_footprint(stack: Stack, pytestconfig: pytest.Config) -> None:
    url = stack.url
    status, body = http("GET", f"{url}/health/ready")
    assert status == 503, body  # nothing published yet
    assert _healthcheck(stack, "redis") == 0
    assert _healthcheck(stack, "api") != 0, "the api's health check passes before any model is loaded"

    started = time.monotonic()
    job_id = _train(stack, "c2f", C2F_PARAMS)
    job = _wait_finished(stack, job_id)
    report(pytestconfig, f"POST /train (c2f, {N_USERS} users) -> finished in {time.monotonic() - started:.1f} s")
    version = job["model_version"]
    assert version and version.endswith("-c2f")
    _wait_served(stack, version)
    assert _healthcheck(stack, "api") == 0

    status, rec = http("GET", f"{url}/recommend/u0?n=20")
    assert status == 200, rec
    assert rec["model_version"] == version
    items = [item["item_id"] for item in rec["items"]]
    assert len(items) == 20 == len(set(items)) and all(i.startswith("i") for i in items)
    scores = [item["score"] for item in rec["items"]]
    assert scores == sorted(scores, reverse=True)

    status, fp = http("GET", f"{url}/footprint")
    assert status == 200, fp
    assert fp["model_version"] == version and fp["method"] == "c2f" and fp["n_users"] == N_USERS

    # the non-root worker published into the named volume, as its own user
    owner = stack.compose.podman.run(
        "exec", stack.compose.container("api"), "stat", "-c", "%U", f"/artifacts/versions/{version}"
    ).stdout.strip()
    assert owner == "c2f"


def test_worker_stopped_mid_job_fails_the_job_and_restarts(stack: Stack, pytestconfig: pytest.Config) -> None:
    compose = stack.compose
    _, models = http("GET", f"{stack.url}/models")
    published_before = models["available"]

    job_id = _train(stack, "c2f", LONG_PARAMS)

    def training() -> bool:
        job = _job(stack, job_id)
        assert job["status"] in ("queued", "started"), job
        return job["status"] == "started" and job.get("stage") in ("coarse", "fine") and (job.get("epoch") or 0) >= 1

    wait_for(f"job {job_id} to train", training, JOB_TIMEOUT, compose.all_logs)

    started = time.monotonic()
    compose.compose("stop", "worker")  # SIGTERM, then SIGKILL after the 10 s stop timeout
    report(pytestconfig, f"compose stop worker (mid-job) took {time.monotonic() - started:.1f} s")
    assert compose.state("worker") == "exited"
    logs = compose.logs("worker")
    assert "resorting to SIGKILL" not in logs, logs

    def failed() -> dict[str, Any] | None:
        job = _job(stack, job_id)
        return job if job["status"] == "failed" else None

    job = wait_for(f"job {job_id} to be reported failed", failed, 15.0, compose.all_logs)
    assert job["error"] == STOPPED_ERROR, job
    _, models = http("GET", f"{stack.url}/models")
    assert models["available"] == published_before, "a stopped job published a version"

    compose.compose("start", "worker")
    assert compose.state("worker") == "running"
    job = _wait_finished(stack, _train(stack, "ud", UD_PARAMS))
    assert job["model_version"].endswith("-ud")
    _wait_served(stack, job["model_version"])


def test_compose_teardown_is_complete(podman: Podman, tmp_path: Path) -> None:
    """``down()`` leaves nothing behind even when ``up`` failed half-way (an image that does not exist)."""
    override = write_override(
        tmp_path / "override.yml",
        images={"api": "localhost/c2f-no-such-image:0", "worker": "localhost/c2f-no-such-image:0"},
        api_port=free_port(),
        data_dir=tmp_path,
    )
    compose = ComposeStack(podman, f"c2ftestfail{os.getpid()}{uuid.uuid4().hex[:6]}", override, tmp_path)
    try:
        with pytest.raises(PodmanError):
            compose.up()
    finally:
        compose.down()
    assert compose.leftovers() == []
