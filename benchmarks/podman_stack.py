"""Build this repository's images with podman and run docker-compose.yml with podman-compose.

Used by tests/test_containers.py (marker ``container``) and benchmarks/compose_bench.py. The Dockerfile and
docker-compose.yml are used as they are; what differs on a machine without Docker and without registry access
is passed from outside and never ends up in an image:

* podman's runtime settings, in a containers.conf of our own (``CONTAINERS_CONF``): runc and cgroupfs (crun
  fails on hybrid cgroups, there is no systemd) and rlimits no higher than the host allows;
* base images: ``localhost/c2f-python:3.11`` (build argument ``PYTHON_IMAGE``) and ``localhost/c2f-redis:7``
  (compose override) stand in for ``python:3.11-slim`` and ``redis:7-alpine``; ``.ci/podman-setup`` builds them;
* this machine's pip settings (index, find-links, CA bundle), given to ``podman build`` as a secret pip.conf, a
  secret CA bundle and a ``wheels`` build context (the Dockerfile's header lists these inputs).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.net import free_port  # noqa: F401  (tests/test_containers.py and compose_bench.py import it here)

ROOT = Path(__file__).resolve().parents[1]
# The images the container test and benchmark build (not the compose file's names, which users' builds own).
TAGS = {"api": "localhost/c2f-api:container-test", "worker": "localhost/c2f-worker:container-test"}
PYTHON_IMAGE = "localhost/c2f-python:3.11"
REDIS_IMAGE = "localhost/c2f-redis:7"
SETUP_HINT = "`bash .ci/podman-setup` (as root) installs podman and builds the local base images"
# Raising rlimits above the host's is not permitted in these sandboxes; these are below every host's limits.
ULIMITS = ("nofile=1024:1024", "nproc=4096:4096")
BUILD_TIMEOUT = 1200.0


class PodmanError(RuntimeError):
    """A podman or podman-compose command failed; the message carries the command and its output's tail."""


def tail(text: str, chars: int = 4000) -> str:
    return text[-chars:]


def write_containers_conf(path: Path) -> Path:
    """A containers.conf for podman on machines like CI's: runc (when installed), cgroupfs, capped rlimits."""
    engine = ['cgroup_manager = "cgroupfs"', 'events_logger = "file"']
    if shutil.which("runc"):
        engine.append('runtime = "runc"')
    ulimits = ", ".join(json.dumps(u) for u in ULIMITS)
    path.write_text("[containers]\n" + f"default_ulimits = [{ulimits}]\n" + "[engine]\n" + "\n".join(engine) + "\n")
    return path


@dataclass
class Podman:
    """Runs ``podman`` and ``podman-compose`` with our containers.conf."""

    env: dict[str, str]

    @classmethod
    def configured(cls, workdir: Path) -> Podman:
        conf = write_containers_conf(workdir / "containers.conf")
        return cls(env={**os.environ, "CONTAINERS_CONF": str(conf)})

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["podman", *args]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise PodmanError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail(proc.stdout + proc.stderr)}")
        return proc

    def image_exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def image_id(self, image: str) -> str:
        """The image's id, or "" when there is none."""
        return self.run("image", "inspect", "--format", "{{.Id}}", image, check=False).stdout.strip()

    def image_size(self, image: str) -> int:
        """Bytes of the image's layers, uncompressed (what ``podman images`` shows)."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())

    def inspect_image(self, image: str) -> dict[str, Any]:
        return json.loads(self.run("image", "inspect", image).stdout)[0]  # type: ignore[no-any-return]


def compose_command() -> list[str] | None:
    """podman-compose: the module in this Python (what .ci/podman-setup installs), else the command on PATH."""
    if importlib.util.find_spec("podman_compose") is not None:
        return [sys.executable, "-m", "podman_compose"]
    found = shutil.which("podman-compose")
    return [found] if found else None


def unavailable_reason(podman: Podman) -> str | None:
    """Why the images cannot be built and run here, or None when they can."""
    if shutil.which("podman") is None:
        return f"podman is not installed; {SETUP_HINT}"
    if compose_command() is None:
        return f"podman-compose is not installed; {SETUP_HINT}"
    try:
        info = podman.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
        if info.returncode != 0:
            return f"podman does not work here: {tail(info.stderr, 300).strip()}"
        for image in (PYTHON_IMAGE, REDIS_IMAGE):
            if not podman.image_exists(image):
                return f"the local base image {image} is missing; {SETUP_HINT}"
        probe = podman.run("run", "--rm", "--network", "none", PYTHON_IMAGE, "true", check=False, timeout=120)
        if probe.returncode != 0:
            return f"podman cannot start a container here: {tail(probe.stderr, 300).strip()}"
    except subprocess.TimeoutExpired as exc:
        return f"podman did not answer: {exc}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Building


def dockerfile_arg(name: str) -> str:
    """The default of a global ``ARG name=default`` in the Dockerfile."""
    m = re.search(rf"^ARG {name}=(\S*)$", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert m, f"the Dockerfile has no ARG {name}=..."
    return m.group(1)


def pip_config() -> dict[str, str]:
    """This machine's pip settings (``pip config list``), environment variables first, by option name."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    entries = []
    for line in out.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            value = raw.strip("'\"")
        entries.append((not key.startswith(":env:"), key.rsplit(".", 1)[-1], value))
    config: dict[str, str] = {}
    for _, name, value in sorted(entries, key=lambda e: e[0]):  # stable: environment entries win
        config.setdefault(name, value)
    return config


@dataclass
class BuildInputs:
    """``podman build`` flags that hand this machine's pip settings to the build without storing them."""

    flags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    pip_conf: str = ""


def pip_build_inputs(workdir: Path, config: dict[str, str] | None = None) -> BuildInputs:
    """A pip.conf for the build (as a secret) naming the CA bundle secret, the ``wheels`` context and this
    machine's http(s) indexes; and, when the wheels directory holds the CPU torch build, TORCH_CPU_INDEX_URL=""
    so that the worker's torch comes from it (the CPU wheel index may be unreachable)."""
    config = pip_config() if config is None else config
    inputs = BuildInputs()
    lines = ["[global]"]
    cert = config.get("cert") or os.environ.get("SSL_CERT_FILE") or ""
    if cert and Path(cert).is_file():
        inputs.flags += ["--secret", f"id=ca.crt,src={cert}"]
        lines.append("cert = /run/secrets/ca.crt")
    for option in ("index-url", "extra-index-url"):
        urls = [u for u in config.get(option, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            lines.append(f"{option} = {' '.join(urls)}")
    wheel_dirs = [d for d in config.get("find-links", "").split() if Path(d).is_dir()]
    if wheel_dirs:
        inputs.flags += ["--build-context", f"wheels={wheel_dirs[0]}"]
        lines.append("find-links = /wheels")
        torch = dockerfile_arg("TORCH_VERSION")
        if any(Path(wheel_dirs[0]).glob(f"torch-{torch}+cpu-*.whl")):
            inputs.build_args["TORCH_CPU_INDEX_URL"] = ""
    timeout = config.get("timeout") or config.get("default-timeout")
    if timeout:
        lines.append(f"timeout = {timeout}")
    inputs.pip_conf = "\n".join(lines) + "\n"
    pip_conf = workdir / "pip.conf"
    pip_conf.write_text(inputs.pip_conf)
    inputs.flags += ["--secret", f"id=pip.conf,src={pip_conf}"]
    return inputs


def compose_build(service: str) -> dict[str, Any]:
    """docker-compose.yml's ``build`` section of ``service`` (context, target, args as a dict)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    build = dict(compose["services"][service]["build"])
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    build["args"] = {k: str(v) for k, v in args.items()}
    return build


def build_image(
    podman: Podman, service: str, tag: str, inputs: BuildInputs, log_path: Path, timeout: float = BUILD_TIMEOUT
) -> float:
    """Build ``service``'s target from the Dockerfile as docker-compose.yml builds it, plus the local base image
    and the pip inputs; return the seconds it took (layers come from podman's cache when nothing changed)."""
    build = compose_build(service)
    args = {**build["args"], "PYTHON_IMAGE": PYTHON_IMAGE, **inputs.build_args}
    cmd = ["podman", "build", "--format", "docker", "--network", "host", "--layers"]
    for limit in ULIMITS:
        cmd += ["--ulimit", limit]
    cmd += ["--target", build["target"], "-t", tag, "-f", str(ROOT / "Dockerfile"), *inputs.flags]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd.append(str((ROOT / build.get("context", ".")).resolve()))
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, env=podman.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise PodmanError(f"building {service} failed ({log_path}):\n{tail(log_path.read_text())}")
    return time.monotonic() - started


def build_images(podman: Podman, workdir: Path, report: Callable[[str], None]) -> dict[str, str]:
    """Build TAGS (api, worker) with this machine's pip inputs; report each one's build time and size. The image a
    tag pointed to before is removed when the build replaced it (unless a container still uses it)."""
    inputs = pip_build_inputs(workdir)
    # One after the other: built side by side, both would build the shared base-cpu stage and the next run's cache
    # would match only one of the two (and a cold build gained 15 s of 6 min from it here).
    for service, tag in TAGS.items():
        previous = podman.image_id(tag)
        seconds = build_image(podman, service, tag, inputs, workdir / f"build-{service}.log")
        size = podman.image_size(tag)
        report(f"{service} image built in {seconds:.0f} s: {size / 1e6:.0f} MB ({size} bytes)")
        if previous and previous != podman.image_id(tag):
            podman.run("rmi", previous, check=False)
    return dict(TAGS)


# ---------------------------------------------------------------------------------------------------------------
# Running docker-compose.yml


def write_tiny_dataset(data_dir: Path, n_users: int = 120, n_items: int = 80, seed: int = 3) -> Path:
    """``data_dir/tiny``: a small LightGCN dataset (``train.txt``, ``test.txt``; ``user_list.txt`` / ``item_list.txt``
    naming users ``u<k>`` and items ``i<k>``), readable by the images' non-root user. Users and items belong to 4
    planted communities; each user has 6-13 distinct items, about 80% from its own community, one in five (at least
    one) held out as test."""
    communities = 4
    rng = np.random.default_rng(seed)
    item_community = np.arange(n_items) % communities
    train, test = [], []
    for user in range(n_users):
        own = np.flatnonzero(item_community == user % communities)
        other = np.flatnonzero(item_community != user % communities)
        count = int(rng.integers(6, 14))
        inside = min(own.size, round(0.8 * count))
        picked = np.concatenate(
            [rng.choice(own, inside, replace=False), rng.choice(other, count - inside, replace=False)]
        )
        rng.shuffle(picked)
        held = max(1, round(0.2 * count))
        test.append(f"{user} " + " ".join(map(str, sorted(picked[:held].tolist()))))
        train.append(f"{user} " + " ".join(map(str, sorted(picked[held:].tolist()))))
    tiny = data_dir / "tiny"
    tiny.mkdir(parents=True, exist_ok=True)
    (tiny / "train.txt").write_text("\n".join(train) + "\n")
    (tiny / "test.txt").write_text("\n".join(test) + "\n")
    (tiny / "user_list.txt").write_text("org_id remap_id\n" + "".join(f"u{u} {u}\n" for u in range(n_users)))
    (tiny / "item_list.txt").write_text("org_id remap_id\n" + "".join(f"i{i} {i}\n" for i in range(n_items)))
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tiny


def write_override(path: Path, *, images: dict[str, str], api_port: int, data_dir: Path) -> Path:
    """The compose override for this machine: local images, the API published on ``api_port`` of loopback (8000
    may be taken) and ``data_dir`` as the data volume (compose merges volumes by their target, /data)."""
    volume = json.dumps(f"{data_dir}:/data:ro")
    path.write_text(
        "# This machine's differences from docker-compose.yml (written by benchmarks/podman_stack.py).\n"
        "services:\n"
        "  redis:\n"
        f"    image: {REDIS_IMAGE}\n"
        "  api:\n"
        f"    image: {images['api']}\n"
        "    ports: !override\n"  # replace the list instead of appending to it (compose spec)
        f'      - "127.0.0.1:{api_port}:8000"\n'
        f"    volumes:\n      - {volume}\n"
        "  worker:\n"
        f"    image: {images['worker']}\n"
        f"    volumes:\n      - {volume}\n"
    )
    return path


class ComposeStack:
    """``podman-compose -p PROJECT -f docker-compose.yml -f OVERRIDE ...``; ``down()`` removes everything the
    project created (containers, pod, network, volumes), also after a failed ``up``."""

    def __init__(self, podman: Podman, project: str, override: Path, log_dir: Path) -> None:
        command = compose_command()
        assert command is not None
        self.podman = podman
        self.project = project
        self.base = [*command, "-p", project, "-f", str(ROOT / "docker-compose.yml"), "-f", str(override)]
        self.log_dir = log_dir

    def compose(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [*self.base, *args]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=self.podman.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        with (self.log_dir / "compose.log").open("a") as log:
            log.write(f"$ {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        if check and proc.returncode != 0:
            raise PodmanError(f"podman-compose {' '.join(args)} exited {proc.returncode}:\n{tail(proc.stderr)}")
        return proc

    def up(self) -> None:
        self.compose("up", "-d", "--no-build", timeout=300)

    def container(self, service: str) -> str:
        out = self.podman.run(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.project={self.project}",
            "--filter",
            f"label=io.podman.compose.service={service}",
            "--format",
            "{{.Names}}",
        ).stdout.split()
        assert len(out) == 1, f"expected one {service} container, found {out}"
        return out[0]

    def state(self, service: str) -> str:
        return self.podman.run("inspect", "--format", "{{.State.Status}}", self.container(service)).stdout.strip()

    def logs(self, service: str, chars: int = 3000) -> str:
        try:
            proc = self.podman.run("logs", self.container(service), check=False, timeout=30)
        except (AssertionError, PodmanError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"
        return tail(proc.stdout + proc.stderr, chars)

    def all_logs(self) -> str:
        return "\n".join(f"--- {s}\n{self.logs(s)}" for s in ("redis", "api", "worker"))

    def down(self) -> None:
        """``down -v``, then remove whatever is left with the project's label (a failed up, a killed down)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.compose("down", "-v", "-t", "10", timeout=180, check=False)
        label = f"label=io.podman.compose.project={self.project}"
        leftovers = self.podman.run("ps", "-a", "-q", "--filter", label, check=False).stdout.split()
        if leftovers:
            self.podman.run("rm", "-f", "-t", "0", *leftovers, check=False, timeout=120)
        self.podman.run("pod", "rm", "-f", "--ignore", f"pod_{self.project}", check=False, timeout=60)
        volumes = self.podman.run("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if volumes:
            self.podman.run("volume", "rm", "-f", *volumes, check=False, timeout=60)
        networks = self.podman.run("network", "ls", "-q", "--filter", label, check=False).stdout.split()
        if networks:
            self.podman.run("network", "rm", "-f", *networks, check=False, timeout=60)

    def leftovers(self) -> list[str]:
        """Containers, volumes and networks of this project that still exist."""
        label = f"label=io.podman.compose.project={self.project}"
        found = []
        for kind in (["ps", "-a"], ["volume", "ls"], ["network", "ls"]):
            found += self.podman.run(*kind, "-q", "--filter", label, check=False).stdout.split()
        return found


# ---------------------------------------------------------------------------------------------------------------
# HTTP


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw, status, ctype = resp.read(), resp.status, resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        raw, status, ctype = err.read(), err.code, err.headers.get("content-type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode(errors="replace"))


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, on_timeout: Callable[[], str], interval: float = 0.5
) -> Any:
    """Poll ``check`` until it returns something truthy; connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})\n{on_timeout()}")
