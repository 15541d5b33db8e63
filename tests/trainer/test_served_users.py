"""TrainConfig.served_users = "fold_in" (c2f/trainer/export.py): the artifact stores the users' fold-in map, fitted
on the trained users in the served items' basis, and the served metrics are those of every user folded in, as the
service serves them (on planted communities, so a wrong basis or a wrong map shows as lost recall)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import c2f
from c2f.contract.config import TrainConfig

QUICK: dict[str, Any] = {"dim": 32, "layers": 1, "epochs": 8, "batch_size": 1024, "seed": 7, "biases": False}


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("ud", {}),  # the stored table, its item rows only
        ("ud", {"pq_subspaces": 4, "pq_refine_epochs": 2}),  # codes in a rotated basis
        ("legcf", {"m_c": 16, "t_c": 2}),  # the sparse form
    ],
)
def test_users_folded_in_serve_as_well_as_trained_ones(
    synthetic_lightgcn_dir: Path, tmp_path: Path, method: str, params: dict[str, Any]
) -> None:
    values = {**QUICK, **params}
    stored = c2f.train(synthetic_lightgcn_dir, method=method, out=tmp_path / "stored", progress=False, **values)
    folded = c2f.train(
        synthetic_lightgcn_dir,
        method=method,
        out=tmp_path / "folded",
        progress=False,
        served_users="fold_in",
        **values,
    )
    served = folded.manifest.metrics.served["compressed"].test["recall@20"]
    trained = folded.manifest.metrics.trained.test["recall@20"]
    stored_served = stored.manifest.metrics.served["compressed"].test["recall@20"]
    assert served >= 0.9 * min(trained, stored_served), (served, trained, stored_served)
    assert {"fold_in_W", "fold_in_c"} <= set(folded.recommender.artifact.arrays)
    # the user rows are not served; the map (d × d + d float32) is (tests/contract/test_served.py counts exactly)
    map_bytes = QUICK["dim"] * (QUICK["dim"] + 1) * 4
    assert folded.footprint().serving_memory_bytes < stored.footprint().serving_memory_bytes + map_bytes
    # the service serves what the metrics measured: a known user's vector is its fold-in
    rec = folded.recommender
    assert rec.user_vectors == "fold_in"
    users = np.arange(5)
    np.testing.assert_allclose(rec.user_embeddings(users), rec.fold_in([rec.seen_items(u) for u in users]))


def test_a_form_rebuilt_at_load_cannot_fold_users_in() -> None:
    with pytest.raises(ValueError, match="needs a stored compressed form"):
        TrainConfig(method="hash", served_users="fold_in")
    TrainConfig(method="hash", served_users="fold_in", pq_subspaces=8)  # with codes it can
    with pytest.raises(ValueError, match="served_users must be"):
        TrainConfig(served_users="nobody")  # type: ignore[arg-type]
