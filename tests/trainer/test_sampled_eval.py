"""Sampled evaluation in training runs: a fixed validation sample for early stopping, one capped test sample shared
by the trained and both served evaluations, recorded in the manifest with standard errors."""

from __future__ import annotations

import numpy as np
import pytest

import c2f.trainer.export
import c2f.trainer.fit
from c2f.contract.artifact import load_artifact
from c2f.contract.config import TrainConfig
from c2f.trainer.data import load_dataset
from c2f.trainer.evaluate import sample_users
from c2f.trainer.pipeline import train_and_publish

TINY = dict(method="legcf", dim=16, m_c=8, batch_size=1024, epochs=3, patience=1, seed=11)


@pytest.fixture(scope="module")
def run(synthetic_lightgcn_dir, tmp_path_factory):
    """One legcf run with 40 validation and 50 test users (of 600), every evaluate() call's users recorded."""
    calls: list[tuple[str, np.ndarray | None, int]] = []
    mp = pytest.MonkeyPatch()
    for module in (c2f.trainer.fit, c2f.trainer.export):
        original = module.evaluate

        def spy(*args, _original=original, _name=module.__name__, **kwargs):
            truth = args[2]
            calls.append((_name, kwargs.get("users"), int(truth.nnz)))
            return _original(*args, **kwargs)

        mp.setattr(module, "evaluate", spy)
    try:
        config = TrainConfig(valid_users=40, test_users=50, **TINY)
        published = train_and_publish(str(synthetic_lightgcn_dir), config, tmp_path_factory.mktemp("artifacts"))
    finally:
        mp.undo()
    return published, calls, load_dataset(str(synthetic_lightgcn_dir), seed=TINY["seed"])


def test_validation_reads_one_fixed_seeded_sample_every_epoch(run):
    published, calls, data = run
    valid_calls = [users for _, users, nnz in calls if nnz == data.valid.nnz]
    assert len(valid_calls) >= 2  # the starting state and at least one epoch
    expected = sample_users(data.valid, 40, TINY["seed"], stream=1)
    assert expected.size == 40
    for users in valid_calls:
        assert users is not None and np.array_equal(users, expected)
    valid = published.manifest.metrics.trained.valid
    assert valid["n_users"] == 40 and valid["n_eligible"] > 40
    assert 0 < valid["ndcg@20_se"] < 0.5


def test_trained_and_both_served_test_figures_use_the_same_capped_sample(run):
    published, calls, data = run
    test_calls = [(name, users) for name, users, nnz in calls if nnz == data.test.nnz]
    assert {name for name, _ in test_calls} == {"c2f.trainer.fit", "c2f.trainer.export"}
    assert len(test_calls) == 3  # trained, served exact, served compressed
    first = test_calls[0][1]
    assert first is not None and first.size == 50
    for _, users in test_calls:
        assert np.array_equal(users, first)
    metrics = published.manifest.metrics
    for variant in ("trained", "compressed", "exact"):
        test = metrics.test(variant)
        assert test["n_users"] == 50, variant
        assert test["n_eligible"] == int((np.diff(data.test.indptr) > 0).sum())
        assert test["recall@20_se"] > 0 and test["ndcg@20_se"] > 0


def test_the_manifest_records_sample_sizes_and_seed(run):
    published, _, data = run
    stored = load_artifact(published.path).manifest.metrics.evaluation  # as read back from disk
    assert stored["valid"].users == 40 and stored["valid"].requested == 40 and stored["valid"].seed == TINY["seed"]
    assert stored["test"].users == 50 and stored["test"].requested == 50
    assert stored["test"].eligible == int((np.diff(data.test.indptr) > 0).sum())
