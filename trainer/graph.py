"""Torch side of the graph: sparse CSR adjacency on a device and differentiable propagation (Eq. 5-6).

The adjacency itself is built by ``contract.reconstruct.expanded_adjacency`` (numpy/scipy, O(nnz)), so the
trainer and the service's exact mode share one definition of Eq. 2, 3, 13 and 14.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def to_torch_csr(adj: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    """scipy CSR (n, n) float32 -> torch sparse CSR tensor on ``device``."""
    adj = sp.csr_matrix(adj, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.from_numpy(adj.indptr.astype(np.int64)),
        torch.from_numpy(adj.indices.astype(np.int64)),
        torch.from_numpy(adj.data),
        size=adj.shape,
        device=device,
        check_invariants=False,
    )


class _SymmetricSpMM(torch.autograd.Function):
    """y = Â·x for a symmetric sparse Â; the gradient w.r.t. x is Â·g (Âᵀ = Â), so no transpose is stored."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adj, grad)


def propagate(
    adj: torch.Tensor, X0: torch.Tensor, layers: int, step: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Layer mean (1/(L+1))·Σ_l Â^l·X0, differentiable in X0. adj: (n, n) sparse CSR; X0: (n, k) -> (n, k).

    ``step``: a replacement for one layer's h -> Â·h (e.g. the released fine stage's corrected step)."""
    total = X0
    current = X0
    for _ in range(layers):
        current = _SymmetricSpMM.apply(adj, current) if step is None else step(current)
        total = total + current
    return total / (layers + 1)
