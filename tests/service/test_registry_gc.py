"""A hot swap frees the old model while the collector stays frozen (so forked server processes keep sharing)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

import c2f.service.registry as registry_module
from c2f.service.registry import ModelRegistry
from tests.fixtures import build_artifact


def test_swap_frees_the_old_model_without_unfreezing(artifact_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_artifact(artifact_root, "c2f", seed=0)
    registry = ModelRegistry(artifact_root, reload_seconds=0)
    assert registry.load_initial().ok
    old = registry.current
    assert old is not None
    refs = [weakref.ref(x) for x in (old, old.recommender, old.recommender.scorer, old.artifact, old.artifact.manifest)]
    refs.append(weakref.ref(old.artifact.arrays["graph_indices"]))
    del old

    def unfreeze() -> None:  # would put every object a forked process shares back under the collector
        raise AssertionError("gc.unfreeze() called on a swap")

    monkeypatch.setattr(registry_module.gc, "unfreeze", unfreeze)
    second = build_artifact(artifact_root, "c2f", seed=1)
    assert registry.reload().version == second
    assert [r() for r in refs] == [None] * len(refs)  # freed by reference counting, frozen or not
    assert gc.get_freeze_count() > 0
