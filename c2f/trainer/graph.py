"""Torch side of the graph: sparse CSR adjacency on a device and differentiable propagation (Eq. 5-6).

The adjacency itself is built by ``contract.reconstruct.expanded_adjacency`` (numpy/scipy, O(nnz)), so the
trainer and the service's exact mode share one definition of Eq. 2, 3, 13 and 14.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
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


@torch.no_grad()
def _layer_mean(adj: torch.Tensor, X0: torch.Tensor, layers: int, overwrite: bool = False) -> torch.Tensor:
    """(1/(L+1))·Σ_l Â^l·X0 with one running total updated in place (no autograd graph). ``overwrite``: X0 is the
    caller's scratch and becomes the total (one (n, k) array less at the peak)."""
    total = X0 if overwrite else X0.clone()
    # two scratch arrays written in turn by addmm(out=, beta=0) instead of a new array per layer from
    # torch.sparse.mm, which zero-fills and converts its result: 13.0 against 19.7 ms per product on Gowalla
    # (N = 70,839, d = 64, one thread; benchmarks/train_step.py)
    scratch = [torch.empty_like(X0) for _ in range(min(layers, 2))]
    current = X0
    for layer in range(layers):
        out = scratch[layer % 2]
        torch.addmm(out, adj, current, beta=0.0, out=out)
        total.add_(out)
        current = out
    return total.div_(layers + 1)


class _SymmetricLayerMean(torch.autograd.Function):
    """P·x with P = (1/(L+1))·Σ_l Â^l for a symmetric Â. P is symmetric too, so the gradient w.r.t. x is P·g: the
    backward pass is one more layer mean, with no per-layer tensors kept for autograd and no graph of additions.
    Measured on Gowalla (N = 70,839, d = 64, L = 3, one thread): a forward + backward of a UD batch took 0.43 s
    against 0.52 s through per-layer autograd (the six sparse products are the floor: benchmarks/train_step.py)."""

    @staticmethod
    def forward(ctx: Any, adj: torch.Tensor, x: torch.Tensor, layers: int) -> torch.Tensor:
        ctx.adj = adj
        ctx.layers = layers
        return _layer_mean(adj, x, layers)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        return None, _layer_mean(ctx.adj, grad.contiguous(), ctx.layers), None


def propagate(
    adj: torch.Tensor, X0: torch.Tensor, layers: int, step: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """Layer mean (1/(L+1))·Σ_l Â^l·X0, differentiable in X0. adj: (n, n) sparse CSR, symmetric; X0: (n, k) ->
    (n, k).

    ``step``: a replacement for one layer's h -> Â·h (e.g. the released fine stage's corrected step)."""
    if step is None:
        return _SymmetricLayerMean.apply(adj, X0, layers)
    total = X0
    current = X0
    for _ in range(layers):
        current = step(current)
        total = total + current
    return total / (layers + 1)


# columns propagated at once by propagate_columns: its temporaries are a few (n, block) float32 blocks
_COLUMN_BLOCK = 32


@dataclass(frozen=True)
class DenseColumns:
    """A dense (n_rows, n_cols) layer 0 that is never held whole: ``block(cols)`` makes its columns ``cols`` (a
    slice) as an (n_rows, len) float32 array (e.g. ``S·E[:, cols]``, or ``tanh`` of it: element-wise maps keep
    columns separate)."""

    n_rows: int
    n_cols: int
    block: Callable[[slice], np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_rows, self.n_cols


@torch.no_grad()
def propagate_columns(
    adj: torch.Tensor,
    X0: sp.spmatrix | DenseColumns,
    layers: int,
    step: Callable[[torch.Tensor], torch.Tensor] | None = None,
    block: int = _COLUMN_BLOCK,
) -> torch.Tensor:
    """:func:`propagate` of a constant X0 (n, k) (no gradient), sparse or made a block of columns at a time.

    Propagation acts on each column independently, so the result is the same as propagating the dense X0 at once;
    but peak memory is the (n, k) float32 result plus O(n·block), instead of the dense X0 and the running total and
    layer tensors (about five (n, k) arrays). For LEGCF's P = M·[S^c; I] at a million users and m_c = 300 that is
    the difference between about 1.5 GB and 8 GB.
    """
    if not isinstance(X0, DenseColumns):
        X0 = sp.csc_matrix(X0, dtype=np.float32)
    n, k = X0.shape
    device = adj.device
    out = torch.empty((n, k), dtype=torch.float32, device=device)
    for start in range(0, k, block):
        cols = slice(start, min(k, start + block))
        if isinstance(X0, DenseColumns):
            dense = np.asarray(X0.block(cols), dtype=np.float32)
            if dense.base is not None:  # a view of someone's array (e.g. E[:, cols]): never overwrite it
                dense = dense.copy(order="C")
        else:
            dense = X0[:, cols].toarray()  # float32, a new array
        # Row-major, always: a CSC slice's toarray() is column-major, and the CSR product on a column-major block
        # (its scratch copies the strides) is several times slower (docs/benchmarks-history.md, "Scale at 1M users to
        # early stopping after the row-major P build").
        block_t = torch.from_numpy(np.ascontiguousarray(dense)).to(device)  # own scratch: the layer sum overwrites it
        out[:, cols] = (
            _layer_mean(adj, block_t, layers, overwrite=True) if step is None else propagate(adj, block_t, layers, step)
        )
    return out
