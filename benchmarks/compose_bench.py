"""Container figures for BENCHMARKS.md: image sizes and `compose up` -> /health/ready 200 with a published model.

    python benchmarks/compose_bench.py [--repeats 5]

Needs what tests/test_containers.py needs: podman, podman-compose and the local base images of
`.ci/podman-setup`. Builds the api and worker images as that test does (podman's layer cache: nothing is rebuilt
when the tree is unchanged) and prints their sizes; brings docker-compose.yml up once and publishes a small C2F
model into the artifacts volume through POST /train; then, --repeats times, `compose down` (volumes kept, as
after a host restart) and `compose up -d`, timing from the start of `up` until GET /health/ready answers 200
with that model. Everything the project created is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from benchmarks.podman_stack import (
    ComposeStack,
    Podman,
    build_images,
    free_port,
    http,
    unavailable_reason,
    wait_for,
    write_override,
    write_tiny_dataset,
)

C2F_PARAMS = {"dim": 16, "m_c": 12, "m_r": 4, "t_r": 2, "d_r": 8, "epochs": 4, "batch_size": 1024, "seed": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed compose up runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="c2f-compose-bench-") as tmp:
        work = Path(tmp)
        podman = Podman.configured(work)
        reason = unavailable_reason(podman)
        if reason:
            print(f"cannot run: {reason}")
            return 2
        images = build_images(podman, work, print)
        write_tiny_dataset(work / "data")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        override = write_override(work / "override.yml", images=images, api_port=port, data_dir=work / "data")
        compose = ComposeStack(podman, f"c2fbench{os.getpid()}", override, work)
        try:
            compose.up()
            wait_for("the api", lambda: http("GET", f"{url}/health/live")[0] == 200, 120, compose.all_logs)
            _, body = http("POST", f"{url}/train", {"dataset_uri": "tiny", "method": "c2f", "params": C2F_PARAMS})
            job_url = f"{url}/jobs/{body['job_id']}"
            job = wait_for("the job", lambda: _finished(job_url), 300, compose.all_logs, interval=1.0)
            version = job["model_version"]
            print(f"published {version}")

            def ready() -> bool:
                code, answer = http("GET", f"{url}/health/ready", timeout=2)
                return code == 200 and answer["model_version"] == version

            wait_for("the model", ready, 60, compose.all_logs)
            seconds = []
            for _ in range(args.repeats):
                compose.compose("down", "-t", "10")  # containers, pod and network go; the volumes stay
                started = time.monotonic()
                compose.up()
                wait_for("ready", ready, 120, compose.all_logs, interval=0.1)
                seconds.append(time.monotonic() - started)
                print(f"compose up -> /health/ready 200 ({version}): {seconds[-1]:.1f} s")
            print(
                f"compose up -> ready over {len(seconds)} runs: median {statistics.median(seconds):.1f} s, "
                f"max {max(seconds):.1f} s"
            )
        finally:
            compose.down()
    return 0


def _finished(job_url: str) -> dict | None:
    _, job = http("GET", job_url, timeout=10)
    if job["status"] in ("failed", "canceled"):
        raise RuntimeError(f"job {job['status']}: {job.get('error')}")
    return job if job["status"] == "finished" else None


if __name__ == "__main__":
    sys.exit(main())
