"""Assignments keep exactly t non-zeros per row; METIS init and the pinv/bridging updates behave as specified."""

import numpy as np
import scipy.sparse as sp
import torch

from c2f.trainer.assignment import (
    bipartite_adjacency,
    bridging_assignment,
    fine_assignment_init,
    metis_assignment,
    metis_parts,
    pinv_assignment,
    similarity_assignment,
)


def block_graph(n_blocks=4, users_per=20, items_per=15, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for b in range(n_blocks):
        for u in range(users_per):
            items = rng.choice(items_per, size=6, replace=False) + b * items_per
            rows += [b * users_per + u] * 6
            cols += items.tolist()
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_blocks * users_per, n_blocks * items_per))


def test_metis_recovers_disconnected_blocks():
    graph = block_graph()
    parts = metis_parts(graph, 4, seed=0)
    n_users = graph.shape[0]
    assert parts.shape == (graph.shape[0] + graph.shape[1],)
    for b in range(4):
        block = np.concatenate([parts[b * 20 : (b + 1) * 20], parts[n_users + b * 15 : n_users + (b + 1) * 15]])
        assert len(set(block.tolist())) == 1, "a connected block was split"
    assert len(set(parts.tolist())) == 4


def test_bipartite_adjacency_is_the_symmetric_user_item_graph() -> None:
    rng = np.random.default_rng(3)
    dense = (rng.random((9, 7)) < 0.3).astype(np.float32)
    graph = sp.csr_matrix(dense)
    xadj, adjncy = bipartite_adjacency(graph)
    full = np.zeros((16, 16), np.float32)
    full[:9, 9:], full[9:, :9] = dense, dense.T
    expected = sp.csr_matrix(full)
    assert xadj.dtype == adjncy.dtype == np.int64
    assert np.array_equal(xadj, expected.indptr) and np.array_equal(adjncy, expected.indices)


def test_metis_assignment_gives_each_part_a_distinct_meta_embedding_and_t_nonzeros():
    parts = np.array([0, 1, 2, 3, 0, 1, 2, 3, 3, 3])
    idx, w = metis_assignment(parts, 4, 3, 0.9, seed=0)
    assert idx.shape == (10, 3) and w.shape == (10, 3)
    np.testing.assert_array_equal(idx[:, 0], parts)  # own part's meta-embedding first, with weight w*
    assert all(len(set(row)) == 3 for row in idx.tolist())  # t distinct non-zeros per row
    np.testing.assert_allclose(w[:, 0], 0.9)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)


def test_pinv_assignment_recovers_an_exact_two_sparse_composition():
    rng = np.random.default_rng(0)
    H_meta = torch.from_numpy(rng.standard_normal((6, 16)).astype(np.float32))  # m < d: full row rank
    true_idx = np.array([[0, 3], [1, 2], [4, 5], [2, 0]])
    true_w = np.array([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5]], np.float32)
    H_full = torch.einsum("nt,ntd->nd", torch.from_numpy(true_w), H_meta[torch.from_numpy(true_idx)])
    idx, w = pinv_assignment(H_full, H_meta, 2, normalise=False)
    assert idx.shape == (4, 2)
    for r in range(4):
        got = dict(zip(idx[r].tolist(), w[r].tolist(), strict=True))
        want = dict(zip(true_idx[r].tolist(), true_w[r].tolist(), strict=True))
        assert got.keys() == want.keys()
        np.testing.assert_allclose([got[k] for k in want], list(want.values()), rtol=1e-3, atol=1e-4)


def test_pinv_assignment_normalised_keeps_the_proportions():
    rng = np.random.default_rng(0)
    H_meta = torch.from_numpy(rng.standard_normal((6, 16)).astype(np.float32))
    H_full = 0.03 * H_meta[0:1] + 0.01 * H_meta[4:5]  # tiny raw weights 0.03 / 0.01
    idx, w = pinv_assignment(H_full, H_meta, 2)
    assert idx[0].tolist() == [0, 4]
    np.testing.assert_allclose(w[0], [0.75, 0.25], rtol=1e-3)


def test_fine_assignment_init_has_t_r_per_coarse_row_and_follows_the_bridge():
    # Coarse row c is used only by entities of fine part c % 3: the bridge must pick that part first.
    n, m_c, m_r = 60, 6, 3
    S_c_idx = np.stack([np.arange(n) % m_c, (np.arange(n) + 1) % m_c], axis=1)
    S_c_w = np.tile(np.array([[0.9, 0.1]], np.float32), (n, 1))
    fine_parts = (np.arange(n) % m_c) % m_r
    idx, w = fine_assignment_init(S_c_idx, S_c_w, m_c, fine_parts, m_r, 2, 0.8)
    assert idx.shape == (m_c, 2)
    assert all(len(set(r)) == 2 for r in idx.tolist())
    np.testing.assert_array_equal(idx[:, 0], np.arange(m_c) % m_r)
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)


def test_bridging_and_similarity_updates_keep_t_r_per_row():
    rng = np.random.default_rng(1)
    H_full = torch.from_numpy(rng.standard_normal((50, 8)).astype(np.float32))
    H_c = torch.from_numpy(rng.standard_normal((6, 8)).astype(np.float32))
    H_r = torch.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
    for idx, w in (bridging_assignment(H_full, H_c, H_r, 3), similarity_assignment(H_c, H_r, 3)):
        assert idx.shape == (6, 3) and w.shape == (6, 3)
        assert all(len(set(r)) == 3 for r in idx.tolist())
        assert (w >= 0).all()
        np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-5)


def test_normalise_rows_keeps_every_index_non_zero_when_a_kept_value_is_negative():
    """Bug (c): a negative top-t value used to get weight 0, so a row no longer had exactly t non-zeros."""
    from c2f.trainer.assignment import normalise_rows

    idx = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    values = np.array([[0.9, 0.2, -0.4], [-0.1, -0.2, -0.3], [0.5, 0.5, 0.0]], dtype=np.float32)
    _, w = normalise_rows(idx, values)
    assert (w > 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    assert w[0, 0] > w[0, 1] > w[0, 2]  # the order of the kept values is kept
    np.testing.assert_allclose(w[1], 1 / 3)  # no positive value: uniform
