"""c2f/trainer/data/memory.py: freed allocator memory goes back to the OS, and load_dataset asks for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import c2f.trainer.data.dataset as dataset
from c2f.trainer.data.memory import release_freed_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_freed_arrow_and_malloc_memory_leaves_the_process() -> None:
    # ~150 MB through pyarrow's pool and numpy (malloc), then freed: the allocators keep most of it cached
    strings = pa.array(np.char.add("user-", np.arange(3_000_000).astype(str)))
    codes = [np.arange(200_000) * k for k in range(40)]  # 40 × 1.6 MB: malloc'd, below the mmap threshold
    del strings, codes
    before = _rss_mb()
    release_freed_memory()
    assert before - _rss_mb() > 20, (before, _rss_mb())


def test_load_dataset_releases_after_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(dataset, "release_freed_memory", lambda: calls.append(1))
    path = tmp_path / "t.csv"
    path.write_text("user,item\n" + "".join(f"u{u},i{u % 7}\nu{u},i{(u + 1) % 7}\n" for u in range(50)))
    dataset.load_dataset(str(path), seed=0)
    assert calls == [1]


def test_evaluations_and_operator_builds_hand_their_temporaries_back(synthetic_lightgcn_dir, monkeypatch) -> None:
    import torch

    import c2f.trainer.fit as fit
    import c2f.trainer.models as models
    from c2f.trainer.assignment import metis_assignment, metis_parts

    calls: list[str] = []
    monkeypatch.setattr(fit, "release_freed_memory", lambda: calls.append("evaluate"))
    monkeypatch.setattr(models, "release_freed_memory", lambda: calls.append("build"))
    data = dataset.load_dataset(str(synthetic_lightgcn_dir))
    idx, w = metis_assignment(metis_parts(data.train, 4, seed=0), 4, 2, 0.7, seed=0)
    model = models.Coarse(data.train, idx, w, 4, 8, 2, torch.device("cpu"))
    assert calls == ["build"]
    trainer = fit.Trainer(data, batch_size=512, negatives=1, reg=1e-4, eval_every=1, patience=1, seed=0)
    trainer.validate(model)
    assert calls == ["build", "evaluate"]
