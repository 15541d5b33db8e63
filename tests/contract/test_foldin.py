"""Fold-in (c2f.contract.foldin): the base estimates, the fitted map, the estimators on planted communities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from c2f.contract.artifact import Artifact, ArtifactError, load_artifact, version_path
from c2f.contract.foldin import ESTIMATORS, FoldIn, Map, fitted, history_csr
from c2f.service.scoring import Recommender
from tests.fixtures import build_artifact, make_manifest, planted_ud_arrays


def _table(vectors: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda rows: vectors[np.asarray(rows)]


def test_features_are_one_lightgcn_propagation_step() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    degree = np.array([4, 1, 9])
    fold = FoldIn(_table(vectors), degree, 2)
    histories = history_csr(np.array([0, 2, 3]), np.array([0, 2, 1]), 3)
    expected_0 = (vectors[0] / np.sqrt(2 * 4) + vectors[2] / np.sqrt(2 * 9)).astype(np.float32)
    expected_1 = vectors[1] / np.sqrt(1 * 1)
    np.testing.assert_allclose(fold.propagate(histories), np.stack([expected_0, expected_1]), rtol=1e-6)


def test_a_repeated_item_counts_once_and_an_empty_history_gives_zero_features() -> None:
    vectors = np.eye(3, dtype=np.float32)
    fold = FoldIn(_table(vectors), np.ones(3), 3)
    once = history_csr(np.array([0, 1]), np.array([2]), 3)
    twice = history_csr(np.array([0, 2]), np.array([2, 2]), 3)
    empty = history_csr(np.array([0, 0]), np.array([], dtype=np.int64), 3)
    for base in ("propagate", "least_squares"):
        np.testing.assert_allclose(fold.base(once, base), fold.base(twice, base))
        assert not fold.base(empty, base).any()


def test_the_map_fit_recovers_a_linear_relation() -> None:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((400, 5))
    W0, c0 = rng.standard_normal((5, 5)), rng.standard_normal(5)
    targets = features @ W0 + c0
    fitted_map = Map.fit(features, targets.astype(np.float32), biases=(2 * targets[:, 0]).astype(np.float32))
    np.testing.assert_allclose(fitted_map.W, W0, atol=0.01)
    np.testing.assert_allclose(fitted_map.c, c0, atol=0.01)
    assert fitted_map.bias is not None
    np.testing.assert_allclose(features @ fitted_map.bias[0] + fitted_map.bias[1], 2 * targets[:, 0], atol=0.05)


def test_the_map_is_fitted_on_the_base_estimates_of_trained_entities() -> None:
    rng = np.random.default_rng(1)
    n_items, d = 60, 5
    vectors = rng.standard_normal((n_items, d)).astype(np.float32)
    graph = sp.random(300, n_items, density=0.1, random_state=1, format="csr")
    graph.data[:] = 1.0
    W0 = rng.standard_normal((d, d))
    probe = FoldIn(_table(vectors), np.bincount(graph.indices, minlength=n_items), d)
    for base in ("propagate", "least_squares"):
        targets = (probe.base(graph, base) @ W0).astype(np.float32)  # trained vectors that the map can explain
        fold = fitted(_table(vectors), _table(targets), graph, d)
        np.testing.assert_allclose(fold.vectors(graph[:5], f"{base}+map"), targets[:5], atol=0.05)  # type: ignore[arg-type]


def test_without_trained_entities_the_map_is_the_identity() -> None:
    vectors = np.eye(2, dtype=np.float32)
    fold = fitted(_table(vectors), _table(np.ones((3, 2), dtype=np.float32)), sp.csr_matrix((3, 2)), 2)
    history = history_csr(np.array([0, 1]), np.array([1]), 2)
    np.testing.assert_allclose(fold.vectors(history, "propagate+map"), fold.vectors(history, "propagate"))


@pytest.fixture
def planted(artifact_root: Path) -> tuple[Recommender, np.ndarray]:
    arrays, item_comm = planted_ud_arrays()
    version = build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    return Recommender(load_artifact(version_path(artifact_root, version))), item_comm


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_a_visitor_of_a_planted_community_gets_that_communitys_items(
    planted: tuple[Recommender, np.ndarray], estimator: str
) -> None:
    rec, item_comm = planted
    for community in range(4):
        history = np.flatnonzero(item_comm == community)[:3]
        ((idx, scores),) = rec.recommend_histories([history], n=6, estimator=estimator)  # type: ignore[arg-type]
        assert len(idx) == 6 and np.all(np.diff(scores) <= 0)
        assert set(item_comm[idx]) == {community}, (estimator, community, item_comm[idx])
        assert not set(idx) & set(history)  # exclude_seen drops the history


@pytest.mark.parametrize("estimator", ["least_squares+map", "propagate+map"])
def test_a_mapped_estimate_of_a_trained_user_is_close_to_its_trained_vector(
    planted: tuple[Recommender, np.ndarray], estimator: str
) -> None:
    rec, _ = planted
    histories = [rec.seen_items(u) for u in range(rec.n_users)]
    folded = rec.fold_in(histories, estimator)  # type: ignore[arg-type]
    trained = rec.user_embeddings(np.arange(rec.n_users))
    cosine = (folded * trained).sum(1) / np.linalg.norm(folded, axis=1) / np.linalg.norm(trained, axis=1)
    assert cosine.min() > 0.95
    # and on the trained users' scale, which the raw estimates are not
    ratio = np.linalg.norm(folded, axis=1) / np.linalg.norm(trained, axis=1)
    assert np.all((ratio > 0.8) & (ratio < 1.25))


def test_fold_in_refuses_out_of_range_items_and_answers_an_empty_history(
    planted: tuple[Recommender, np.ndarray],
) -> None:
    rec, _ = planted
    with pytest.raises(IndexError):
        rec.fold_in([np.array([rec.n_items])])
    ((idx, _),) = rec.recommend_histories([np.array([], dtype=np.int64)], n=5)
    assert len(idx) == 5
    with pytest.raises(ValueError, match="unknown fold-in estimator"):
        rec.fold_in([np.array([0])], "magic")  # type: ignore[arg-type]


def test_a_new_item_folded_in_from_a_communitys_users_points_at_that_community(
    planted: tuple[Recommender, np.ndarray],
) -> None:
    rec, item_comm = planted
    user_comm = np.arange(rec.n_users) % 4
    vectors, biases = rec.fold_in_items([np.flatnonzero(user_comm == c)[:4] for c in range(4)])
    assert vectors.shape == (4, 4) and biases is None  # the planted model has no item biases
    # each new item's largest coordinate is its community's axis, and that community's users score it highest
    np.testing.assert_array_equal(vectors.argmax(axis=1), np.arange(4))
    users = rec.user_embeddings(np.arange(rec.n_users))
    best_community = user_comm[(users @ vectors.T).argmax(axis=0)]
    np.testing.assert_array_equal(best_community, np.arange(4))
    with pytest.raises(IndexError):
        rec.fold_in_items([np.array([rec.n_users])])


def test_least_squares_solves_the_implicit_als_system() -> None:
    """The Woodbury path (k < 2d/3 neighbours) and the direct one (k >= 2d/3) both give
    (G + α·HᵀH + λI)⁻¹(1 + α)·Σh, for histories one at a time and decoded together in one batch (mixed lengths,
    shared and repeated neighbours, an empty one)."""
    from c2f.contract import foldin

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((30, 6)).astype(np.float32)
    fold = FoldIn(_table(vectors), np.ones(30), 6)
    G = vectors.astype(np.float64).T @ vectors
    ridge = foldin._LS_RIDGE * np.trace(G) / 6
    histories = [np.arange(3), np.array([], dtype=np.int64), np.array([29, 4, 4]), np.arange(9), np.arange(5, 9)]
    expected = np.zeros((len(histories), 6))
    for row, history in enumerate(histories):
        if not history.size:
            continue
        H = vectors[np.unique(history)].astype(np.float64)
        system = G + foldin._LS_ALPHA * H.T @ H + ridge * np.eye(6)
        expected[row] = np.linalg.solve(system, (1 + foldin._LS_ALPHA) * H.sum(0))
        got = fold.least_squares(history_csr(np.array([0, history.size]), history, 30))
        np.testing.assert_allclose(got[0], expected[row], rtol=1e-4, atol=1e-5)
    indptr = np.concatenate([[0], np.cumsum([h.size for h in histories])])
    batch = fold.least_squares(history_csr(indptr, np.concatenate(histories), 30))
    np.testing.assert_allclose(batch, expected, rtol=1e-4, atol=1e-5)


def test_known_users_served_by_fold_in_get_their_communitys_items(artifact_root: Path) -> None:
    arrays, item_comm = planted_ud_arrays()
    version = build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    artifact = load_artifact(version_path(artifact_root, version))
    trained, folded = Recommender(artifact, user_vectors="trained"), Recommender(artifact, user_vectors="fold_in")
    users = np.arange(folded.n_users)
    expected = folded.fold_in([folded.seen_items(u) for u in users])
    np.testing.assert_allclose(folded.user_embeddings(users), expected)
    assert not np.allclose(trained.user_embeddings(users), expected)  # not the trained vectors
    for u, (idx, _) in zip(users, folded.recommend_batch(users, n=5), strict=True):
        assert set(item_comm[idx]) == {u % 4}


def _stored_map_artifact(artifact_root: Path, **drop: bool) -> tuple[Artifact, np.ndarray]:
    """The planted ud model with its users' fold-in map fitted on its trained users and stored (as export does for
    served_users = "fold_in")."""
    arrays, item_comm = planted_ud_arrays()
    n_users = len(arrays["user_ids"])
    graph = sp.csr_matrix(
        (np.ones(len(arrays["graph_indices"]), np.float32), arrays["graph_indices"], arrays["graph_indptr"]),
        shape=(n_users, len(arrays["item_ids"])),
    )
    table = arrays["H_full"]
    fold = fitted(lambda rows: table[n_users + rows], lambda rows: table[rows], graph, table.shape[1])
    fitted_map = fold.map_for("least_squares")
    arrays.update(fold_in_W=fitted_map.W, fold_in_c=fitted_map.c)
    for name in drop:
        arrays.pop(name)
    version = build_artifact(artifact_root, "ud", arrays=arrays, manifest=make_manifest("ud"))
    return load_artifact(version_path(artifact_root, version)), item_comm


def test_a_model_without_user_rows_serves_every_user_by_fold_in(artifact_root: Path) -> None:
    artifact, item_comm = _stored_map_artifact(artifact_root)
    rec = Recommender(artifact)  # user_vectors="trained" asked, but there are none to serve
    assert rec.user_vectors == "fold_in" and rec.scorer.users_folded_in
    users = np.arange(rec.n_users)
    np.testing.assert_allclose(rec.user_embeddings(users), rec.fold_in([rec.seen_items(u) for u in users]))
    for u, (idx, _) in zip(users, rec.recommend_batch(users, n=5), strict=True):
        assert set(item_comm[idx]) == {u % 4}
    # the table's user rows are not held: serving holds the items' rows and the map
    fp = artifact.footprint
    table_items = artifact.arrays["H_full"][rec.n_users :].nbytes
    assert (
        fp.serving_memory_bytes
        == table_items + artifact.arrays["fold_in_W"].nbytes + artifact.arrays["fold_in_c"].nbytes
    )
    # new items are folded in from users that are folded in themselves
    vectors, _ = rec.fold_in_items([np.flatnonzero(users % 4 == c)[:4] for c in range(4)])
    np.testing.assert_array_equal(vectors.argmax(axis=1), np.arange(4))


def test_half_a_stored_map_is_refused(artifact_root: Path) -> None:
    with pytest.raises(ArtifactError, match="fold-in map needs both"):
        _stored_map_artifact(artifact_root, fold_in_c=True)
