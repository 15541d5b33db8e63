"""What the benchmarks share: where the repository and the data are, the machine a run was on, and the paired
t-test over seeds."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
