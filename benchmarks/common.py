"""What the benchmarks share: where the repository and the data are, the machine a run was on, the paired t-test
over seeds, and ``c2f train`` run as a subprocess (:func:`train_cli`: the published version, wall time and peak RSS
of that process)."""

from __future__ import annotations

import collections
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the repository
DATA = ROOT.parent / "shared" / "data"  # the datasets beside it (Gowalla, Yelp2018, ...)


@dataclass(frozen=True)
class Machine:
    """The machine a benchmark ran on."""

    cpu: str  # the model name of /proc/cpuinfo; else platform.processor() or platform.machine()
    cores: int  # os.cpu_count()
    usable_cores: int  # the cores this process may run on (its affinity mask); cores where that is not known
    ram_gib: float | None  # MemTotal of /proc/meminfo
    python: str
    numpy: str
    torch: str | None  # the installed torch's version (not imported), None where torch is not installed
    gpu: str | None  # the first CUDA device, looked up only when asked for (that imports torch)

    def describe(self) -> str:
        """One line: ``CPU model, N cores, R GiB RAM, Python X[, torch Y][, GPU Z]``."""
        parts = [self.cpu, f"{self.cores} cores"]
        if self.usable_cores != self.cores:
            parts[-1] += f" ({self.usable_cores} usable)"
        if self.ram_gib is not None:
            parts.append(f"{self.ram_gib:.0f} GiB RAM")
        parts.append(f"Python {self.python}")
        if self.torch is not None:
            parts.append(f"torch {self.torch}")
        if self.gpu is not None:
            parts.append(f"GPU {self.gpu}")
        return ", ".join(parts)


def machine(*, gpu: bool = False) -> Machine:
    """The machine this runs on; ``gpu``: also the CUDA device's name (imports torch, where it is installed)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        ram_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    cores = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = cores
    torch_version = None
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        torch_version = importlib.metadata.version("torch")
    device = None
    if gpu and torch_version is not None:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    return Machine(cpu, cores, usable, ram_gib, platform.python_version(), np.__version__, torch_version, device)


def paired_t(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """``x`` against ``y`` paired (one value of each per seed or run): the mean of ``x - y`` and the two-sided paired
    t-test's p-value (scipy's ttest_rel; 1.0 where the two are identical, which ttest_rel cannot test)."""
    from scipy import stats

    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    p = float(stats.ttest_rel(a, b).pvalue) if np.any(a != b) else 1.0
    return float(np.mean(a - b)), p


# ----------------------------------------------------------------------------------------------------------------
# the `c2f` command as a subprocess
# ----------------------------------------------------------------------------------------------------------------
def c2f_command(*args: str) -> list[str]:
    """``c2f ARGS`` as a subprocess of this interpreter (``python -m c2f.cli.main``: the command the installed ``c2f``
    script runs); with :func:`c2f_env` it runs this checkout's code."""
    return [sys.executable, "-m", "c2f.cli.main", *args]


def c2f_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH (a ``c2f`` subprocess imports the checkout
    the benchmark runs from, not another install), ``TYPER_USE_RICH=0`` (errors as one plain ``Error: ...`` line) and
    ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["TYPER_USE_RICH"] = "0"
    env.update(extra or {})
    return env


def train_options(values: Mapping[str, Any]) -> list[str]:
    """TrainConfig values as ``c2f train`` options: ``--method`` and one ``-p key=JSON`` for every other key (the
    CLI parses each value as JSON, so strings, numbers, booleans and null arrive as given)."""
    options = ["--method", str(values["method"])] if "method" in values else []
    for key, value in values.items():
        if key != "method":
            options += ["-p", f"{key}={json.dumps(value)}"]
    return options


@dataclass(frozen=True)
class CliTrain:
    """One ``c2f train`` process: its exit status, the version it published (None when it published none), its wall
    seconds and peak RSS, and the error it printed when it refused its arguments (exit status 2)."""

    returncode: int
    version: str | None
    wall_seconds: float
    peak_rss_mb: float
    error: str | None
    stderr_tail: str

    def check(self) -> str:
        """The published version; SystemExit with the process's last lines when it published none."""
        if self.version is None:
            raise SystemExit(f"c2f train exited with {self.returncode}: {self.error or self.stderr_tail}")
        return self.version


def _fork_not_vfork() -> None:
    """A ``preexec_fn``: its presence makes subprocess fork instead of vfork. A vforked child's ``ru_maxrss`` starts
    at this process's own high-water mark (Linux carries the old address space's over exec), a forked child's at
    this process's RSS when it forks; so a benchmark that loads models between runs still reads each run's own
    peak."""


def train_cli(dataset: str | Path, out: str | Path, values: Mapping[str, Any]) -> CliTrain:
    """``c2f train DATASET --out OUT`` with ``values`` (:func:`train_options`) in a subprocess, its log passed
    through to stderr.

    ``peak_rss_mb`` is that process's peak (``wait4``'s ``ru_maxrss``), training and publishing only; ``wall_seconds``
    counts from its start to its exit, interpreter start and imports included. The version is read from the line
    ``published VERSION -> PATH`` it prints.
    """
    command = c2f_command("train", str(dataset), "--out", str(out), *train_options(values))
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with tempfile.TemporaryFile("w+") as stdout:
        start = time.perf_counter()
        with subprocess.Popen(
            command,
            env=c2f_env({"TQDM_DISABLE": "1"}),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_fork_not_vfork,  # see _fork_not_vfork
        ) as proc:
            assert proc.stderr is not None
            for line in proc.stderr:
                sys.stderr.write(line)
                tail.append(line)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        stdout.seek(0)
        printed = stdout.read()
    sys.stderr.write(printed)
    found = re.search(r"^published (\S+) -> ", printed, re.MULTILINE)
    errors = [line.removeprefix("Error: ").strip() for line in tail if line.startswith("Error: ")]
    error = errors[-1].removeprefix("Invalid value: ") if errors else None
    return CliTrain(
        returncode=proc.returncode,
        version=found.group(1) if found and proc.returncode == 0 else None,
        wall_seconds=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        error=error,
        stderr_tail="".join(tail)[-3000:],
    )
