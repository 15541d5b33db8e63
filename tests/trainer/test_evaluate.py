"""trainer.evaluate: hand-computed Recall/NDCG, agreement with a per-user reference, chunking, inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from c2f.trainer.evaluate import KS, evaluate, metric_keys, sample_users


def evaluate_numpy_reference(
    scores: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None, ks: Sequence[int] = KS
) -> dict[str, float]:
    """Slow, obviously-correct per-user Recall@K / NDCG@K (dense ``scores``): the reference ``evaluate`` must match."""
    truth = sp.csr_matrix(truth)
    excl = sp.csr_matrix(exclude) if exclude is not None else None
    sums = {f"{n}@{k}": 0.0 for k in ks for n in ("recall", "ndcg")}
    n_eval = 0
    for u in range(truth.shape[0]):
        t = set(truth.indices[truth.indptr[u] : truth.indptr[u + 1]].tolist())
        if not t:
            continue
        n_eval += 1
        s = np.asarray(scores[u], dtype=np.float64).copy()
        if excl is not None:
            s[excl.indices[excl.indptr[u] : excl.indptr[u + 1]]] = -np.inf
        order = np.argsort(-s, kind="stable")
        for k in ks:
            top = [i for i in order[:k].tolist() if np.isfinite(s[i])]
            gains = [1.0 if i in t else 0.0 for i in top]
            sums[f"recall@{k}"] += sum(gains) / len(t)
            dcg = sum(g / math.log2(r + 2) for r, g in enumerate(gains))
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(t))))
            sums[f"ndcg@{k}"] += dcg / idcg
    out = {key: (v / n_eval if n_eval else 0.0) for key, v in sums.items()}
    out["n_users"] = n_eval
    return out


def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c), dtype=np.float32), (r, c)), shape=(len(rows), n_items))


# 3 users x 6 items. item_emb = I_6, so a user's embedding *is* its score vector.
USER_EMB = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  # user 0
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # user 1
        [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],  # user 2 (no truth: skipped)
    ],
    dtype=np.float32,
)
ITEM_EMB = np.eye(6, dtype=np.float32)
TRAIN = csr([[0], [], [1]], 6)  # user 0 has seen item 0
VALID = csr([[], [5], []], 6)  # user 1's held-out item 5
TRUTH = csr([[2, 5], [4, 0], []], 6)


def test_hand_computed_values() -> None:
    # user 0: item 0 excluded -> ranking 1,2,3,4,5 (ranks 0..4); truth {2, 5} hit at ranks 1 and 4.
    #   @1: recall 0/2 = 0, ndcg 0
    #   @5: recall 2/2 = 1, DCG = 1/log2(3) + 1/log2(6), IDCG = 1/log2(2) + 1/log2(3)
    # user 1: item 5 excluded -> ranking 4,3,2,1,0; truth {4, 0} hit at ranks 0 and 4.
    #   @1: recall 1/2, DCG = 1, IDCG over min(1, 2) = 1 ideal hit = 1 -> ndcg 1
    #   @5: recall 1, DCG = 1 + 1/log2(6), IDCG = 1 + 1/log2(3)
    # user 2: no truth -> skipped; averages over 2 users. @10 and @20 (> 6 items) equal @5.
    ndcg5_u0 = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))  # 0.62405
    ndcg5_u1 = (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))  # 0.85034
    expected = {
        "recall@1": (0 + 0.5) / 2,
        "ndcg@1": (0 + 1) / 2,
        "recall@5": 1.0,
        "ndcg@5": (ndcg5_u0 + ndcg5_u1) / 2,  # 0.737195
        "recall@10": 1.0,
        "ndcg@10": (ndcg5_u0 + ndcg5_u1) / 2,
        "recall@20": 1.0,
        "ndcg@20": (ndcg5_u0 + ndcg5_u1) / 2,
    }
    got = evaluate(USER_EMB, ITEM_EMB, TRUTH, [TRAIN, VALID])
    assert got["n_users"] == 2
    assert set(got) == set(metric_keys(KS)) | {"n_users"}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert got["ndcg@5"] == pytest.approx(0.737195, abs=1e-5)
    # same numbers from the per-user reference, from torch inputs, with chunk_size 1, and with ks=(2,)
    ref = evaluate_numpy_reference(USER_EMB @ ITEM_EMB.T, TRUTH, TRAIN + VALID)
    for key in expected:
        assert ref[key] == pytest.approx(expected[key], abs=1e-9)
    t = evaluate(torch.from_numpy(USER_EMB), torch.from_numpy(ITEM_EMB), TRUTH, [TRAIN, VALID], chunk_size=1)
    assert all(t[k] == pytest.approx(got[k], abs=1e-9) for k in expected)
    # @2: user 0 top {1, 2}: recall 1/2, ndcg (1/log2 3)/(1 + 1/log2 3); user 1 top {4, 3}: recall 1/2, ndcg 1/(..)
    two = evaluate(USER_EMB, ITEM_EMB, TRUTH, [TRAIN, VALID], ks=(2,))
    idcg2 = 1 + 1 / math.log2(3)
    assert set(two) == {"recall@2", "ndcg@2", "n_users"}
    assert two["recall@2"] == pytest.approx(0.5)
    assert two["ndcg@2"] == pytest.approx(((1 / math.log2(3)) / idcg2 + 1 / idcg2) / 2, abs=1e-6)


def test_exclusion_matters_and_excluded_truth_never_hits() -> None:
    # without exclusions user 0's top-1 is item 0 (not truth) and user 1's is item 5 (not truth)
    got = evaluate(USER_EMB, ITEM_EMB, TRUTH, None, ks=(1,))
    assert got["recall@1"] == 0.0 and got["ndcg@1"] == 0.0
    # a truth item that is also excluded is never counted, even when fewer than K items remain
    truth = csr([[0]], 3)
    excl = csr([[0]], 3)
    res = evaluate(np.ones((1, 1)), np.array([[3.0], [2.0], [1.0]]), truth, excl, ks=(1, 5))
    assert res["recall@5"] == 0.0 and res["ndcg@5"] == 0.0 and res["n_users"] == 1


def test_no_truth_users_and_shape_errors() -> None:
    empty = sp.csr_matrix((3, 6), dtype=np.float32)
    res = evaluate(USER_EMB, ITEM_EMB, empty, TRAIN)
    assert res["n_users"] == 0 and res["recall@20"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        evaluate(USER_EMB, ITEM_EMB, csr([[1]], 6), TRAIN)
    with pytest.raises(ValueError, match="shape"):
        evaluate(USER_EMB, ITEM_EMB[:, :3], TRUTH, TRAIN)


def test_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items, d = 57, 83, 8
    users = rng.standard_normal((n_users, d)).astype(np.float32)
    items = rng.standard_normal((n_items, d)).astype(np.float32)
    dense = rng.random((n_users, n_items))
    train = sp.csr_matrix((dense < 0.15).astype(np.float32))
    valid = sp.csr_matrix(((dense >= 0.15) & (dense < 0.2)).astype(np.float32))
    hit = (dense >= 0.2) & (dense < 0.27)
    hit[:5] = False  # a few users without truth
    truth = sp.csr_matrix(hit.astype(np.float32))
    ref = evaluate_numpy_reference(users @ items.T, truth, train + valid, ks=(1, 3, 10, 20))
    for chunk in (1, 7, 4096):
        got = evaluate(users, items, truth, [train, valid], ks=(1, 3, 10, 20), chunk_size=chunk)
        assert got["n_users"] == ref["n_users"] == int((np.diff(truth.indptr) > 0).sum())
        for key in metric_keys((1, 3, 10, 20)):
            assert got[key] == pytest.approx(ref[key], abs=1e-9), (chunk, key)
    # single CSR exclude == list of the two
    merged = evaluate(users, items, truth, sp.csr_matrix(train + valid), ks=(1, 3, 10, 20))
    assert merged == evaluate(users, items, truth, [train, valid], ks=(1, 3, 10, 20))


def test_item_bias_is_added_to_every_users_scores() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, d = 31, 47, 5
    users = rng.standard_normal((n_users, d)).astype(np.float32)
    items = rng.standard_normal((n_items, d)).astype(np.float32)
    bias = (3.0 * rng.standard_normal(n_items)).astype(np.float32)  # large enough to reorder the rankings
    dense = rng.random((n_users, n_items))
    train = sp.csr_matrix((dense < 0.2).astype(np.float32))
    truth = sp.csr_matrix(((dense >= 0.2) & (dense < 0.3)).astype(np.float32))
    ks = (1, 5, 10)
    ref = evaluate_numpy_reference(users @ items.T + bias[None, :], truth, train, ks=ks)
    for chunk in (4, 4096):
        got = evaluate(users, items, truth, train, ks=ks, chunk_size=chunk, item_bias=bias)
        for key in metric_keys(ks):
            assert got[key] == pytest.approx(ref[key], abs=1e-9), (chunk, key)
    assert got != evaluate(users, items, truth, train, ks=ks)  # the bias did change the figures
    with pytest.raises(ValueError, match="item_bias"):
        evaluate(users, items, truth, train, ks=ks, item_bias=bias[:-1])


def _random_problem(seed: int, n_users: int = 400, n_items: int = 60, d: int = 8):
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, d)).astype(np.float32)
    items = rng.standard_normal((n_items, d)).astype(np.float32)
    dense = rng.random((n_users, n_items))
    train = sp.csr_matrix((dense < 0.15).astype(np.float32))
    hit = (dense >= 0.15) & (dense < 0.25)
    hit[:7] = False  # users without truth are never sampled
    return users, items, sp.csr_matrix(hit.astype(np.float32)), train


def test_sample_users_is_fixed_by_seed_and_only_draws_users_with_truth() -> None:
    _, _, truth, _ = _random_problem(1)
    a = sample_users(truth, 100, seed=5, stream=1)
    assert np.array_equal(a, sample_users(truth, 100, seed=5, stream=1))  # same seed: same users
    assert a.size == 100 and np.unique(a).size == 100 and np.all(np.diff(a) > 0)
    assert np.all(np.diff(truth.indptr)[a] > 0)
    assert not np.array_equal(a, sample_users(truth, 100, seed=6, stream=1))
    assert not np.array_equal(a, sample_users(truth, 100, seed=5, stream=2))  # validation vs test streams differ
    everyone = np.flatnonzero(np.diff(truth.indptr) > 0)
    assert np.array_equal(sample_users(truth, 0, seed=5), everyone)  # 0: all
    assert np.array_equal(sample_users(truth, 10_000, seed=5), everyone)  # larger than the population: all


def test_sampled_evaluation_matches_the_reference_on_the_sample_and_reports_standard_errors() -> None:
    users, items, truth, train = _random_problem(2)
    sample = sample_users(truth, 150, seed=3)
    got = evaluate(users, items, truth, train, ks=(5, 20), users=sample, chunk_size=32)
    # the reference restricted to the sampled users (others' truth removed)
    keep = np.zeros(truth.shape[0], dtype=bool)
    keep[sample] = True
    ref = evaluate_numpy_reference(users @ items.T, sp.diags(keep.astype(np.float32)) @ truth, train, ks=(5, 20))
    assert got["n_users"] == 150 and got["n_eligible"] == int((np.diff(truth.indptr) > 0).sum())
    for key in metric_keys((5, 20)):
        assert got[key] == pytest.approx(ref[key], abs=1e-9)
        assert got[f"{key}_se"] > 0
    # the standard error is s / sqrt(n) of the per-user values: recompute it from per-user evaluations
    per_user = np.array(
        [evaluate(users, items, truth, train, ks=(20,), users=np.array([u]))["recall@20"] for u in sample]
    )
    assert got["recall@20_se"] == pytest.approx(per_user.std(ddof=1) / np.sqrt(per_user.size), rel=1e-9)
    # and it is plausible: the sample mean lies within a few standard errors of the all-users figure
    full = evaluate(users, items, truth, train, ks=(20,))
    assert abs(got["ndcg@20"] - full["ndcg@20"]) < 4 * got["ndcg@20_se"]
    # without ``users`` the result keeps its historical keys (no standard errors)
    assert "recall@20_se" not in full and "n_eligible" not in full
