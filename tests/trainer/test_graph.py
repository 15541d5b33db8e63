"""trainer.graph: the layer-mean propagation and its gradient against a dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from c2f.contract.reconstruct import expanded_adjacency
from c2f.trainer.graph import propagate, propagate_columns, to_torch_csr


def _graph(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((30, 20)) < 0.2).astype(np.float32)
    dense[np.arange(30), rng.integers(0, 20, 30)] = 1.0  # every user has an item
    return sp.csr_matrix(dense)


def test_layer_mean_and_its_gradient_match_dense_powers() -> None:
    adj_sp = expanded_adjacency(_graph())
    dense = torch.from_numpy(adj_sp.toarray())
    P = (torch.eye(50) + dense + dense @ dense + dense @ dense @ dense) / 4
    X0 = torch.randn(50, 6, dtype=torch.float32, requires_grad=True)
    weights = torch.randn(50, 6)
    out = propagate(to_torch_csr(adj_sp, torch.device("cpu")), X0, 3)
    (out * weights).sum().backward()
    torch.testing.assert_close(out.detach(), P @ X0.detach(), rtol=1e-5, atol=1e-6)
    # d/dX0 sum(W ∘ P·X0) = Pᵀ·W
    torch.testing.assert_close(X0.grad, P.T @ weights, rtol=1e-5, atol=1e-6)


def test_propagation_leaves_its_input_untouched_and_columns_agree() -> None:
    adj_sp = expanded_adjacency(_graph(1))
    adj = to_torch_csr(adj_sp, torch.device("cpu"))
    X0 = torch.randn(50, 5)
    before = X0.clone()
    whole = propagate(adj, X0, 2)
    assert torch.equal(X0, before)
    by_columns = propagate_columns(adj, sp.csr_matrix(X0.numpy()), 2, block=2)
    torch.testing.assert_close(by_columns, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layers", [0, 1, 2, 4])
def test_every_depth_matches_dense_powers_with_the_scratch_arrays_taking_turns(layers: int) -> None:
    adj_sp = expanded_adjacency(_graph(2))
    dense = torch.from_numpy(adj_sp.toarray())
    X0 = torch.randn(50, 4)
    powers, current = [X0], X0
    for _ in range(layers):
        current = dense @ current
        powers.append(current)
    expected = torch.stack(powers).mean(0)
    adj = to_torch_csr(adj_sp, torch.device("cpu"))
    torch.testing.assert_close(propagate(adj, X0, layers), expected, rtol=1e-5, atol=1e-6)
    by_columns = propagate_columns(adj, sp.csr_matrix(X0.numpy()), layers, block=3)
    torch.testing.assert_close(by_columns, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dense_input", [False, True])
def test_column_blocks_reach_the_sparse_product_row_major(monkeypatch: pytest.MonkeyPatch, dense_input: bool) -> None:
    """A CSC slice's toarray() (and a column view of a C array) is column-major; the CSR product on it is several times
    slower at 1.3M entities, so every block is made row-major before it is propagated, and the result is unchanged."""
    import c2f.trainer.graph as graph
    from c2f.trainer.graph import DenseColumns

    adj_sp = expanded_adjacency(_graph(2))
    adj = to_torch_csr(adj_sp, torch.device("cpu"))
    X0 = np.random.default_rng(3).standard_normal((50, 7)).astype(np.float32)
    source = DenseColumns(50, 7, lambda cols: np.asfortranarray(X0[:, cols])) if dense_input else sp.csc_matrix(X0)
    seen: list[bool] = []
    real = graph._layer_mean

    def spy(adj_t: torch.Tensor, block: torch.Tensor, layers: int, overwrite: bool = False) -> torch.Tensor:
        seen.append(block.is_contiguous())
        return real(adj_t, block, layers, overwrite)

    monkeypatch.setattr(graph, "_layer_mean", spy)
    out = propagate_columns(adj, source, 3, block=3)
    assert seen == [True, True, True]  # blocks of 3, 3 and 1 columns
    torch.testing.assert_close(out, propagate(adj, torch.from_numpy(X0), 3), rtol=1e-5, atol=1e-6)
