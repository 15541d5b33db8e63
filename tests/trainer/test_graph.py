"""trainer.graph: the layer-mean propagation and its gradient against a dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from contract.reconstruct import expanded_adjacency
from trainer.graph import propagate, propagate_columns, to_torch_csr


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
