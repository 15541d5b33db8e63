"""The fine stage's two forwards (C2F, §3.2), one class each, chosen once by name (``TrainConfig.fine_forward``).

Both are linear in the fine rows F, so a fine stage's propagated embeddings are H = M·C0 + (M·B_r)·F with M the
layer mean of the (per-forward) propagation step; a forward says what C0, B_r and the step are, what F is made of,
and what an entity's layer-0 row is (for the L2 term). :class:`c2f.trainer.models.Fine` holds the arrays and the
operators; it asks its forward for everything that differs between the two.

* :class:`PaperForward`, Eq. 16-22: F = S_λ(E_r), Ê^c = (1 − w_cr)·E_c + w_cr·S^r·F, layer 0 = [S^c·Ê^c; Ê^c; F],
  plain propagation on Â^r.
* :class:`ReleasedForward`, the authors' code: F = tanh(S_λ(E_r)), layer 0 = [tanh(S^c·E_c); Ê^c; F] (entity rows
  from the unrefined, frozen codebook) and, after each propagation step, the coarse rows re-mixed with their fine
  rows (:meth:`ReleasedForward.step`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from c2f.contract.manifest import FineForwardName
from c2f.trainer.graph import to_torch_csr

if TYPE_CHECKING:
    from c2f.trainer.models import Fine

Step = Callable[[torch.Tensor], torch.Tensor]
Layer0Columns = Callable[[slice], np.ndarray]


class FineForward:
    """What differs between the fine stage's forwards. One instance per model (it may cache per-model values)."""

    name: ClassVar[FineForwardName]

    def fine_rows(self, thresholded: torch.Tensor) -> torch.Tensor:
        """F (m_r, d) from S_λ(E_r)."""
        raise NotImplementedError

    def operators(
        self, fine: Fine, adj: torch.Tensor, S_c: sp.csr_matrix, S_r: sp.csr_matrix, E_c: np.ndarray
    ) -> tuple[Layer0Columns, sp.csr_matrix, Step | None]:
        """C0 by blocks of columns, B_r ((N + m_c + m_r) × m_r) and the propagation step (None: plain Â^r·h)."""
        raise NotImplementedError

    def entity_layer0(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """Layer-0 rows (b, d) of the entities ``rows``, from each row's t_c terms (gathered per batch rather than
        held as an (N, d) C0 and an (N, m_r) dense B_r: about 1.2 GB at a million users and 300,000 items)."""
        raise NotImplementedError

    def entity_layer0_squared_norms(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """||layer-0 row||² (b,) of the entities ``rows``, as :meth:`entity_layer0` ``.pow(2).sum(1)``."""
        raise NotImplementedError


class PaperForward(FineForward):
    """Eq. 16-22: C0 = [S^c; I; 0]·(1 − w_cr)·E_c, B_r = [w_cr·S^c·S^r; w_cr·S^r; I], plain propagation."""

    name = "paper"

    def fine_rows(self, thresholded: torch.Tensor) -> torch.Tensor:
        return thresholded

    def operators(
        self, fine: Fine, adj: torch.Tensor, S_c: sp.csr_matrix, S_r: sp.csr_matrix, E_c: np.ndarray
    ) -> tuple[Layer0Columns, sp.csr_matrix, Step | None]:
        eye_c, eye_r = sp.identity(fine.m_c, format="csr"), sp.identity(fine.m_r, format="csr")
        coarse_part = sp.vstack([S_c, eye_c, sp.csr_matrix((fine.m_r, fine.m_c))], format="csr")

        def layer0_columns(cols: slice) -> np.ndarray:
            return coarse_part @ ((1.0 - fine.w_cr) * E_c[:, cols])

        fine_part = sp.vstack([fine.w_cr * (S_c @ S_r), fine.w_cr * S_r, eye_r], format="csr")
        return layer0_columns, fine_part, None

    def entity_layer0(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """S^c·Ê^c (Eq. 19)."""
        return torch.einsum("bt,btd->bd", fine.Sc_w_t[rows], fine.refine(F)[fine.Sc_idx_t[rows]])

    def entity_layer0_squared_norms(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """Through Ê^c's Gram matrix, without gathering (b, t_c, d)."""
        from c2f.trainer.models import sparse_rows_squared_norms

        return sparse_rows_squared_norms(fine.refine(F), fine.Sc_idx_t[rows], fine.Sc_w_t[rows])


class ReleasedForward(FineForward):
    """The authors' code: C0 = [tanh(S^c·E_c); (1 − w_cr)·E_c; 0], B_r = [0; w_cr·S^r; I], the corrected step."""

    name = "released"

    def __init__(self) -> None:
        self.layer0_sq: torch.Tensor | None = None  # (N,) ||tanh(S^c·E_c)||²: nothing it depends on trains

    def fine_rows(self, thresholded: torch.Tensor) -> torch.Tensor:
        return torch.tanh(thresholded)

    def operators(
        self, fine: Fine, adj: torch.Tensor, S_c: sp.csr_matrix, S_r: sp.csr_matrix, E_c: np.ndarray
    ) -> tuple[Layer0Columns, sp.csr_matrix, Step | None]:
        zeros_r = np.zeros((fine.m_r, E_c.shape[1]), np.float32)

        def layer0_columns(cols: slice) -> np.ndarray:
            E = E_c[:, cols]
            return np.vstack([np.tanh(S_c @ E), (1.0 - fine.w_cr) * E, zeros_r[:, cols]])

        eye_r = sp.identity(fine.m_r, format="csr")
        fine_part = sp.vstack([sp.csr_matrix((fine.n_entities, fine.m_r)), fine.w_cr * S_r, eye_r], format="csr")
        return layer0_columns, fine_part, self.step(fine, adj, S_c, S_r)

    @staticmethod
    def step(fine: Fine, adj: torch.Tensor, S_c: sp.csr_matrix, S_r: sp.csr_matrix) -> Step:
        """One propagation step of the released code: h = Â^r·h, then with raw S^c, S^r and gate g = w_cr:
        h_full −= S^c·h_c; h_c −= S^r·h_f; h_c = g·S^r·h_f + (1 − g)·h_c; h_full += S^c·h_c (h_c coarse rows,
        h_f fine rows). Linear in h, so the factorised H = M·C0 + (M·B_r)·F still holds."""
        n, m_c, g = fine.n_entities, fine.m_c, fine.w_cr
        Sc, Sr = to_torch_csr(S_c, fine.device), to_torch_csr(S_r, fine.device)

        def step(h: torch.Tensor) -> torch.Tensor:
            h = torch.sparse.mm(adj, h)
            h_full, h_c, h_f = h[:n], h[n : n + m_c], h[n + m_c :]
            h_full = h_full - torch.sparse.mm(Sc, h_c)
            h_c = h_c - torch.sparse.mm(Sr, h_f)
            mixed = torch.sparse.mm(Sr, h_f)
            h_c = g * mixed + (1.0 - g) * h_c
            h_full = h_full + torch.sparse.mm(Sc, h_c)
            return torch.cat([h_full, h_c, h_f])

        return step

    def entity_layer0(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """tanh(S^c·E_c): the unrefined, frozen codebook."""
        return torch.tanh(torch.einsum("bt,btd->bd", fine.Sc_w_t[rows], fine.E_c[fine.Sc_idx_t[rows]]))

    def entity_layer0_squared_norms(self, fine: Fine, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """From a per-entity table made on first use."""
        if self.layer0_sq is None:
            with torch.no_grad():
                chunks = torch.arange(fine.n_entities, device=fine.device).split(1 << 16)
                self.layer0_sq = torch.cat([self.entity_layer0(fine, c, F).pow(2).sum(1) for c in chunks])
        return self.layer0_sq.index_select(0, rows)


FORWARDS: dict[str, type[FineForward]] = {f.name: f for f in (PaperForward, ReleasedForward)}


def make_forward(name: str) -> FineForward:
    """A new forward by name ("paper" or "released"); a clear error for any other."""
    if name not in FORWARDS:
        raise ValueError(f"fine forward must be one of {', '.join(map(repr, FORWARDS))}, got {name!r}")
    return FORWARDS[name]()
