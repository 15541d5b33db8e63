"""The three embedding models: UD (full table), Coarse (LEGCF, §3.1) and Fine (C2F, §3.2).

LightGCN propagation is linear, so for the meta-embedding models the propagated embeddings are a fixed matrix
times the trainable codebook while the assignments are fixed: with layer 0 X0 = B·E (B sparse, Eq. 4/19),
H = M·X0 = (M·B)·E where M = mean_l Â^l. ``P = M·B`` ((N + m) × m, dense) is computed once per assignment (L
sparse products) and a batch then costs a gather and an (b × m)·(m × d) product instead of a full-graph
propagation: exactly the same embeddings and gradients as propagating every batch, orders of magnitude cheaper.
UD has no such factorisation (B = I), so it propagates the whole graph every batch, as LightGCN does.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from contract.reconstruct import assignment_matrix, expanded_adjacency
from trainer.graph import propagate, to_torch_csr


class EmbeddingModel(nn.Module):
    """Common interface of the three models (what fit.py and export.py rely on)."""

    n_entities: int

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For entity rows (b,): propagated embeddings h (b, d) and the squared norms of their layer-0
        embeddings ||e0||² (b,) (for the L2 term), both differentiable."""
        raise NotImplementedError

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        """H_full (N, d): the propagated embeddings of every user and item."""
        raise NotImplementedError

    def snapshot(self) -> dict:
        """Everything needed to restore the model's current state (parameters and assignments)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict) -> None:
        self.load_state_dict(state)


class UD(EmbeddingModel):
    """LightGCN with a full (N, d) embedding table, Xavier initialised."""

    def __init__(self, graph: sp.csr_matrix, dim: int, layers: int, device: torch.device, seed: int = 0):
        super().__init__()
        self.n_entities = graph.shape[0] + graph.shape[1]
        self.layers = layers
        generator = torch.Generator().manual_seed(seed)
        table = torch.empty(self.n_entities, dim)
        nn.init.xavier_uniform_(table, generator=generator)
        self.E = nn.Parameter(table.to(device))
        self.adj = to_torch_csr(expanded_adjacency(graph), device)

    def _propagated(self) -> torch.Tensor:
        return propagate(self.adj, self.E, self.layers)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._propagated()[rows], self.E[rows].pow(2).sum(1)

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self._propagated()


class Coarse(EmbeddingModel):
    """LEGCF coarse stage: codebook E_c (m_c, d), assignment S^c as S_c_idx/S_c_w (N, t_c) (Eq. 12-13).

    Buffers: ``P`` (N + m_c, m_c) = M·[S^c; I], so H = P·E_c; rebuilt by :meth:`set_assignment`.
    """

    def __init__(
        self,
        graph: sp.csr_matrix,
        S_c_idx: np.ndarray,
        S_c_w: np.ndarray,
        m_c: int,
        dim: int,
        layers: int,
        device: torch.device,
        seed: int = 0,
    ):
        super().__init__()
        self.graph = graph
        self.n_entities = graph.shape[0] + graph.shape[1]
        self.m_c, self.layers, self.device = m_c, layers, device
        generator = torch.Generator().manual_seed(seed)
        codebook = torch.empty(m_c, dim)
        nn.init.xavier_uniform_(codebook, generator=generator)
        self.E_c = nn.Parameter(codebook.to(device))
        self.set_assignment(S_c_idx, S_c_w)

    def set_assignment(self, S_c_idx: np.ndarray, S_c_w: np.ndarray) -> None:
        """Install S^c, rebuild A^c (Eq. 13) and the propagation operator P."""
        self.S_c_idx = np.array(S_c_idx, dtype=np.int64, copy=True)
        self.S_c_w = np.array(S_c_w, dtype=np.float32, copy=True)
        adj = to_torch_csr(expanded_adjacency(self.graph, self.S_c_idx, self.S_c_w, self.m_c), self.device)
        B = sp.vstack([assignment_matrix(self.S_c_idx, self.S_c_w, self.m_c), sp.identity(self.m_c, format="csr")])
        self.P = propagate(adj, torch.from_numpy(np.asarray(B.todense(), np.float32)).to(self.device), self.layers)
        self.idx_t = torch.from_numpy(self.S_c_idx).to(self.device)
        self.w_t = torch.from_numpy(self.S_c_w).to(self.device)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.P.index_select(0, rows) @ self.E_c
        # ||Σ_j w_j E_c[i_j]||² = Σ_jk w_j w_k G[i_j, i_k] with G = E_c·E_cᵀ (m_c × m_c): gathers t² scalars per row
        # instead of t vectors of d, which makes the backward pass several times cheaper.
        gram = (self.E_c @ self.E_c.T).reshape(-1)
        idx, w = self.idx_t[rows], self.w_t[rows]
        t = idx.shape[1]
        flat = (idx[:, :, None] * self.m_c + idx[:, None, :]).reshape(-1)
        pair = gram.index_select(0, flat).view(-1, t, t)  # (b, t, t); 1-D index_select has a fast backward
        return h, torch.einsum("bj,bjk,bk->b", w, pair, w)

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self.P[: self.n_entities] @ self.E_c

    @torch.no_grad()
    def meta_embeddings(self) -> torch.Tensor:
        """H_meta (m_c, d): the propagated codebook nodes (Eq. 7)."""
        return self.P[self.n_entities :] @ self.E_c

    def snapshot(self) -> dict:
        return {"E_c": self.E_c.detach().clone(), "S_c_idx": self.S_c_idx.copy(), "S_c_w": self.S_c_w.copy()}

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            self.E_c.copy_(state["E_c"])
        if not (np.array_equal(state["S_c_idx"], self.S_c_idx) and np.array_equal(state["S_c_w"], self.S_c_w)):
            self.set_assignment(state["S_c_idx"], state["S_c_w"])


class Fine(EmbeddingModel):
    """C2F fine stage on top of a frozen coarse stage (Eq. 14-22).

    E_c (m_c, d) and S^c frozen; trainable E_r (m_r, d); S^r as S_r_idx/S_r_w (m_c, t_r).
    Ê^c = (1 − w_cr)·E_c + w_cr·S^r·S_λ(E_r) (Eq. 17), layer 0 = [S^c·Ê^c; Ê^c; S_λ(E_r)] (Eq. 18-19).
    With F = S_λ(E_r): layer 0 = C0 + B_r·F where C0 = [S^c; I; 0]·(1 − w_cr)·E_c is constant and
    B_r = [w_cr·S^c·S^r; w_cr·S^r; I], so H = M·C0 + (M·B_r)·F. Buffers ``H_const`` and ``P`` hold M·C0 and M·B_r.
    """

    def __init__(
        self,
        graph: sp.csr_matrix,
        coarse: Coarse,
        E_r: np.ndarray,
        S_r_idx: np.ndarray,
        S_r_w: np.ndarray,
        w_cr: float,
        soft_lambda: float,
        layers: int,
        device: torch.device,
    ):
        super().__init__()
        self.graph = graph
        self.n_entities = coarse.n_entities
        self.S_c_idx, self.S_c_w = coarse.S_c_idx, coarse.S_c_w
        self.E_c = coarse.E_c.detach().clone()
        self.m_c, self.m_r = self.E_c.shape[0], E_r.shape[0]
        self.w_cr, self.soft_lambda, self.layers, self.device = w_cr, soft_lambda, layers, device
        self.E_r = nn.Parameter(torch.from_numpy(np.asarray(E_r, np.float32)).to(device))
        self.set_assignment(S_r_idx, S_r_w)

    def thresholded(self) -> torch.Tensor:
        """S_λ(E_r) (Eq. 16), (m_r, d). λ = 0 (ablation C) is the identity, with gradient 1 at zero entries too
        (sign·relu would leave the zero-padded entries of the SparsePCA init at 0 forever)."""
        if self.soft_lambda <= 0:
            return self.E_r
        return torch.sign(self.E_r) * torch.relu(self.E_r.abs() - self.soft_lambda)

    def set_assignment(self, S_r_idx: np.ndarray, S_r_w: np.ndarray) -> None:
        """Install S^r, rebuild A^r (Eq. 14) and the operators M·C0 and M·B_r."""
        self.S_r_idx = np.array(S_r_idx, dtype=np.int64, copy=True)
        self.S_r_w = np.array(S_r_w, dtype=np.float32, copy=True)
        adj_np = expanded_adjacency(self.graph, self.S_c_idx, self.S_c_w, self.m_c, self.S_r_idx, self.S_r_w, self.m_r)
        adj = to_torch_csr(adj_np, self.device)
        S_c = assignment_matrix(self.S_c_idx, self.S_c_w, self.m_c)
        S_r = assignment_matrix(self.S_r_idx, self.S_r_w, self.m_r)
        coarse_part = sp.vstack([S_c, sp.identity(self.m_c, format="csr"), sp.csr_matrix((self.m_r, self.m_c))])
        fine_part = sp.vstack([self.w_cr * (S_c @ S_r), self.w_cr * S_r, sp.identity(self.m_r, format="csr")])
        C0 = torch.from_numpy(np.asarray(coarse_part @ ((1.0 - self.w_cr) * self.E_c.cpu().numpy()), np.float32))
        B_r = torch.from_numpy(np.asarray(fine_part.todense(), np.float32))
        self.C0 = C0[: self.n_entities].to(self.device)
        self.B_r = B_r[: self.n_entities].to(self.device)
        self.H_const = propagate(adj, C0.to(self.device), self.layers)
        self.P = propagate(adj, B_r.to(self.device), self.layers)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        F = self.thresholded()
        e0 = self.C0[rows] + self.B_r[rows] @ F
        return self.H_const[rows] + self.P[rows] @ F, e0.pow(2).sum(1)

    @torch.no_grad()
    def all_nodes(self) -> torch.Tensor:
        """H^r (N + m_c + m_r, d) (Eq. 21)."""
        return self.H_const + self.P @ self.thresholded()

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self.all_nodes()[: self.n_entities]

    @torch.no_grad()
    def refined_codebook(self) -> torch.Tensor:
        """Ê^c (m_c, d) (Eq. 17), the layer-0 refined coarse codebook."""
        F = self.thresholded()
        mix = torch.einsum(
            "mt,mtd->md",
            torch.from_numpy(self.S_r_w).to(self.device),
            F[torch.from_numpy(self.S_r_idx).to(self.device)],
        )
        return (1.0 - self.w_cr) * self.E_c + self.w_cr * mix

    def calibrate_lambda(self, target_nonzero: float) -> float:
        """Set λ so that a fraction ``target_nonzero`` of S_λ(E_r)'s entries are non-zero now; returns λ."""
        with torch.no_grad():
            self.soft_lambda = float(torch.quantile(self.E_r.abs().reshape(-1).float(), 1.0 - target_nonzero))
        return self.soft_lambda

    def snapshot(self) -> dict:
        return {
            "E_r": self.E_r.detach().clone(),
            "S_r_idx": self.S_r_idx.copy(),
            "S_r_w": self.S_r_w.copy(),
            "soft_lambda": self.soft_lambda,
        }

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            self.E_r.copy_(state["E_r"])
        self.soft_lambda = state["soft_lambda"]
        if not (np.array_equal(state["S_r_idx"], self.S_r_idx) and np.array_equal(state["S_r_w"], self.S_r_w)):
            self.set_assignment(state["S_r_idx"], state["S_r_w"])
