"""The memory-bounded (blocked) forms of the trainer's big temporaries give the same results as the whole-array
forms they replace: METIS initial assignment, column-blocked propagation, Eq. 11 / Eq. 23-24 projections and the
export's weight refit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import c2f.trainer.assignment as assignment
from c2f.contract.reconstruct import assignment_matrix, compressed_embeddings, expanded_adjacency
from c2f.trainer.export import refit_weights
from c2f.trainer.graph import DenseColumns, propagate, propagate_columns, to_torch_csr


def _graph(seed: int = 0, n_users: int = 40, n_items: int = 30) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))


def test_metis_assignment_drawn_in_blocks_equals_one_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    parts = np.random.default_rng(1).integers(0, 9, size=101)
    whole = assignment.metis_assignment(parts, 9, 3, 0.8, seed=4)
    monkeypatch.setattr(assignment, "_BLOCK_ELEMENTS", 8 * 7)  # 7 rows a block: 15 blocks
    blocked = assignment.metis_assignment(parts, 9, 3, 0.8, seed=4)
    assert np.array_equal(whole[0], blocked[0]) and np.array_equal(whole[1], blocked[1])
    assert np.all(blocked[0][:, 0] == parts)


@pytest.mark.parametrize("block", [1, 5, 64])
def test_propagate_columns_equals_dense_propagation(block: int) -> None:
    graph = _graph()
    n, m = sum(graph.shape), 12
    rng = np.random.default_rng(2)
    idx = np.stack([rng.choice(m, 2, replace=False) for _ in range(n)])
    w = rng.random((n, 2)).astype(np.float32)
    adj = to_torch_csr(expanded_adjacency(graph, idx, w, m), torch.device("cpu"))
    B = sp.vstack([assignment_matrix(idx, w, m), sp.identity(m, format="csr")]).tocsr()
    dense = propagate(adj, torch.from_numpy(np.asarray(B.todense(), np.float32)), 3)
    blocked = propagate_columns(adj, B, 3, block=block)
    assert blocked.shape == dense.shape
    torch.testing.assert_close(blocked, dense, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("block", [1, 3, 64])
def test_propagate_columns_of_a_dense_source_made_per_block_equals_propagating_it_whole(block: int) -> None:
    """The fine stage's H_const: a layer 0 like tanh(S·E) made a block of columns at a time is the same layer 0."""
    graph = _graph(3)
    n = sum(graph.shape)
    rng = np.random.default_rng(4)
    S = sp.random(n, 6, density=0.3, format="csr", random_state=5, dtype=np.float32)
    E = rng.standard_normal((6, 7)).astype(np.float32)
    adj = to_torch_csr(expanded_adjacency(graph), torch.device("cpu"))
    asked: list[slice] = []

    def columns(cols: slice) -> np.ndarray:
        asked.append(cols)
        return np.tanh(S @ E[:, cols])

    blocked = propagate_columns(adj, DenseColumns(n, 7, columns), 3, block=block)
    dense = propagate(adj, torch.from_numpy(np.tanh(S @ E).astype(np.float32)), 3)
    torch.testing.assert_close(blocked, dense, rtol=1e-6, atol=1e-7)
    assert len(asked) == -(-7 // block) and all(c.stop - c.start <= block for c in asked)
    # a source that hands out views of its own array keeps that array: the blocks are scratch, copies of views
    X = np.tanh(S @ E).astype(np.float32)
    kept = X.copy()
    by_views = propagate_columns(adj, DenseColumns(n, 7, lambda cols: X[:, cols]), 3, block=block)
    torch.testing.assert_close(by_views, dense, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(X, kept)


def test_projections_in_row_blocks_equal_the_whole_product(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(0)
    H_full, H_meta, H_fine = torch.randn(203, 8, generator=g), torch.randn(11, 8, generator=g), torch.randn(5, 8)
    whole_pinv = assignment.pinv_assignment(H_full, H_meta, 3)
    whole_bridge = assignment.bridging_assignment(H_full, H_meta, H_fine, 2)
    monkeypatch.setattr(assignment, "_BLOCK_ELEMENTS", 40)  # a few rows a block
    blocked_pinv = assignment.pinv_assignment(H_full, H_meta, 3)
    blocked_bridge = assignment.bridging_assignment(H_full, H_meta, H_fine, 2)
    assert np.array_equal(whole_pinv[0], blocked_pinv[0])
    np.testing.assert_allclose(whole_pinv[1], blocked_pinv[1], rtol=1e-5)
    assert np.array_equal(whole_bridge[0], blocked_bridge[0])
    np.testing.assert_allclose(whole_bridge[1], blocked_bridge[1], rtol=1e-4)


def test_refit_weights_and_compressed_embeddings_in_blocks() -> None:
    """Enough rows for several blocks (the block is 2**22 / (t·d) rows); compared with a per-row solve."""
    rng = np.random.default_rng(3)
    n, t, d, m = 70_000, 2, 64, 6
    H_meta = rng.standard_normal((m, d)).astype(np.float32)
    S_idx = np.stack([rng.choice(m, t, replace=False) for _ in range(8)])[rng.integers(0, 8, n)]
    true_w = rng.random((n, t)).astype(np.float32)
    H_full = compressed_embeddings(S_idx, true_w, H_meta)  # blocked too: 70k rows x t x d > one block
    direct = np.einsum("nt,ntd->nd", true_w, H_meta[S_idx])
    np.testing.assert_allclose(H_full, direct, rtol=1e-5, atol=1e-5)
    w = refit_weights(S_idx, H_meta, H_full)
    np.testing.assert_allclose(w, true_w, rtol=1e-3, atol=1e-3)  # exact data: the refit recovers the weights
