"""trainer/data/memory.py: freed allocator memory goes back to the OS, and load_dataset asks for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import trainer.data.dataset as dataset
from trainer.data.memory import cap_allocator_cache, release_freed_memory


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


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_capped_allocator_returns_freed_mid_sized_blocks_at_once() -> None:
    # a freed 30 MB block raises glibc's dynamic mmap threshold to 30 MB; the cap pins it at 1 MiB instead
    assert cap_allocator_cache()
    big = np.ones(30 << 17)
    del big
    blocks, kept = [], []
    for _ in range(40):  # 4 MiB blocks interleaved with small live ones: heap holes that no trim of the top frees
        blocks.append(np.ones(4 << 17))
        kept.append(np.ones(2000))
    full = _rss_mb()
    del blocks
    assert full - _rss_mb() > 100, (full, _rss_mb())


def test_train_and_publish_caps_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.pipeline as pipeline

    calls = []
    monkeypatch.setattr(pipeline, "cap_allocator_cache", lambda: calls.append(1))
    monkeypatch.setattr(pipeline, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop here")))
    from contract.config import TrainConfig

    with pytest.raises(RuntimeError, match="stop here"):
        pipeline.train_and_publish("unused", TrainConfig(), "unused")
    assert calls == [1]
