"""The embedding models: UD (full table), Coarse (LEGCF, §3.1), Fine (C2F, §3.2) and the equal-memory baselines
Hashed (the hashing trick) and QuotientRemainder (the QR trick).

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

from c2f.contract.manifest import FineForwardName
from c2f.contract.reconstruct import assignment_matrix, expanded_adjacency, hash_buckets, qr_rows
from c2f.trainer.data.memory import release_freed_memory
from c2f.trainer.forwards import make_forward
from c2f.trainer.graph import DenseColumns, propagate, propagate_columns, to_torch_csr


class EmbeddingModel(nn.Module):
    """Common interface of the models (what fit.py and export.py rely on).

    With item biases (``enable_item_bias``) a score is h_u·h_i + b_i (``evaluate``'s ``item_bias``).
    """

    n_entities: int
    n_users: int
    item_bias: nn.Parameter | None

    def __init__(self) -> None:
        super().__init__()
        self.item_bias = None

    def enable_item_bias(self, initial: torch.Tensor | None = None) -> None:
        """Add a trainable (n_items,) per-item score offset (zeros, or ``initial``)."""
        n_items = self.n_entities - self.n_users
        device = next(self.parameters()).device
        values = torch.zeros(n_items) if initial is None else initial.detach().clone()
        self.item_bias = nn.Parameter(values.to(device))

    def bias_of(self, items: torch.Tensor) -> torch.Tensor | None:
        """b_i for item indices (any shape, 0-based items), or None without biases."""
        return None if self.item_bias is None else self.item_bias[items]

    def _bias_state(self) -> dict:
        return {} if self.item_bias is None else {"item_bias": self.item_bias.detach().clone()}

    def _restore_bias(self, state: dict) -> None:
        if self.item_bias is not None and "item_bias" in state:
            with torch.no_grad():
                self.item_bias.copy_(state["item_bias"])

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For entity rows (b,): propagated embeddings h (b, d) and the squared norms of their layer-0
        embeddings ||e0||² (b,) (for the L2 term), both differentiable."""
        raise NotImplementedError

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        """H_full (N, d): the propagated embeddings of every user and item."""
        raise NotImplementedError

    def release_operator(self) -> None:
        """Drop the precomputed propagation operators while the model is not trained or evaluated (the next use
        rebuilds them); models without any keep everything."""

    def snapshot(self) -> dict:
        """Everything needed to restore the model's current state (parameters and assignments)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def restore(self, state: dict) -> None:
        self.load_state_dict(state)


class UD(EmbeddingModel):
    """LightGCN with a full (N, d) embedding table: Xavier uniform, or normal(0, ``init_std``) when given."""

    def __init__(
        self,
        graph: sp.csr_matrix,
        dim: int,
        layers: int,
        device: torch.device,
        seed: int = 0,
        init_std: float | None = None,
    ):
        super().__init__()
        self.n_entities = graph.shape[0] + graph.shape[1]
        self.n_users = graph.shape[0]
        self.layers = layers
        generator = torch.Generator().manual_seed(seed)
        table = torch.empty(self.n_entities, dim)
        if init_std is None:
            nn.init.xavier_uniform_(table, generator=generator)
        else:
            nn.init.normal_(table, std=init_std, generator=generator)
        self.E = nn.Parameter(table.to(device))
        self.adj = to_torch_csr(expanded_adjacency(graph), device)

    def _propagated(self) -> torch.Tensor:
        return propagate(self.adj, self.E, self.layers)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # index_select, and the squared norms of all N rows gathered as scalars, rather than two (b, d) fancy-index
        # gathers: the gathers were a sizeable part of a UD step (docs/benchmarks-history.md, "Where a UD epoch's
        # time went")
        return self._propagated().index_select(0, rows), self.E.pow(2).sum(1).index_select(0, rows)

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self._propagated()


def _uniform(shape: tuple[int, int], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


class SharedRows(EmbeddingModel):
    """Equal-memory baselines whose layer 0 is read from small shared tables (no per-entity parameters), propagated
    by LightGCN on the plain interaction graph every batch as UD is (qr's product is not a fixed sparse matrix
    times one table; :class:`Hashed`'s layer 0 is, and it trains through the operator M·H where that pays).

    Initialisation: every entity's layer-0 entries get the variance UD's Xavier init gives them (uniform with
    bound a = sqrt(6 / (N + d))), so the baselines start at UD's scale."""

    def __init__(self, graph: sp.csr_matrix, dim: int, layers: int, device: torch.device) -> None:
        super().__init__()
        self.n_entities = graph.shape[0] + graph.shape[1]
        self.n_users = graph.shape[0]
        self.layers = layers
        self.entity_bound = float(np.sqrt(6.0 / (self.n_entities + dim)))
        self.adj = to_torch_csr(expanded_adjacency(graph), device)

    def layer0(self) -> torch.Tensor:
        """X0 (N, d): every entity's layer-0 embedding, differentiable in the tables."""
        raise NotImplementedError

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        X0 = self.layer0()
        return propagate(self.adj, X0, self.layers).index_select(0, rows), X0.pow(2).sum(1).index_select(0, rows)

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return propagate(self.adj, self.layer0(), self.layers)


# When the hashing trick trains through its operator P = M·H (N, B) instead of propagating every batch. A batch then
# costs a (rows × B)·(B × d) product forward and one backward, against L sparse products over nnz(Â) each way, so
# the operator pays while rows·B ≤ factor·L·nnz(Â). benchmarks/train_step.py measured the break-even on Gowalla at
# a factor near 23; 16 keeps a margin. P is held whole, so it is also capped in bytes (at a million users it is never
# built).
HASH_OPERATOR_FACTOR = 16
HASH_OPERATOR_MAX_BYTES = 1 << 30


def hash_operator_pays(n_entities: int, buckets: int, batch_rows: int, layers: int, nnz: int) -> bool:
    """Whether training the hashing trick through the dense (n_entities, buckets) float32 operator is cheaper than
    propagating the graph (nnz: stored entries of the expanded adjacency) every batch of ``batch_rows`` rows."""
    fits = n_entities * buckets * 4 <= HASH_OPERATOR_MAX_BYTES
    return fits and batch_rows * buckets <= HASH_OPERATOR_FACTOR * layers * nnz


class Hashed(SharedRows):
    """The hashing trick: entity i (users then items, one shared space) reads row h(i) of a (B, d) table, h the
    seeded hash of ``contract.reconstruct.hash_buckets`` (the service recomputes it from the seed).

    Layer 0 is the fixed one-hot H (N, B) times the table, so, as for LEGCF, H_prop = (M·H)·table exactly: with
    ``operator`` (default: :func:`hash_operator_pays` for batches of ``batch_rows``: users, positives and negatives;
    the default is TrainConfig's 8192 users with one negative) batches read the buffer ``P`` = M·H
    (N, B) instead of propagating the graph; the same embeddings and gradients either way."""

    def __init__(
        self,
        graph: sp.csr_matrix,
        buckets: int,
        dim: int,
        layers: int,
        device: torch.device,
        seed: int = 0,
        batch_rows: int = 3 * 8192,
        operator: bool | None = None,
    ) -> None:
        super().__init__(graph, dim, layers, device)
        generator = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(_uniform((buckets, dim), self.entity_bound, generator).to(device))
        self.rows = torch.from_numpy(hash_buckets(self.n_entities, buckets, seed)).to(device)
        nnz = int(self.adj.values().numel())
        if operator is None:
            operator = hash_operator_pays(self.n_entities, buckets, batch_rows, layers, nnz)
        self.operator = operator
        self.P = torch.empty(0)

    def layer0(self) -> torch.Tensor:
        return self.table[self.rows]

    def _operator(self) -> torch.Tensor:
        """P = M·H (N, B), built on first use after construction or :meth:`release_operator`."""
        if self.P.numel() == 0:
            rows = self.rows.cpu().numpy()[:, None]  # H: one weight-1 entry a row, the assignment of t = 1
            H = assignment_matrix(rows, np.ones(rows.shape, dtype=np.float32), self.table.shape[0])
            self.P = propagate_columns(self.adj, H, self.layers)
        return self.P

    def release_operator(self) -> None:
        self.P = torch.empty(0)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.operator:
            return super().batch_embeddings(rows)
        h = self._operator().index_select(0, rows) @ self.table
        return h, self.table.pow(2).sum(1).index_select(0, self.rows.index_select(0, rows))

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self._operator() @ self.table if self.operator else super().full_embeddings()


class QuotientRemainder(SharedRows):
    """The quotient-remainder trick (Shi et al., KDD'20): entity i reads Q[i // m] and R[i % m] (Q: ceil(N/m) rows,
    R: m rows) combined by element-wise product ("mult") or sum ("sum").

    Init: "mult" draws both tables uniform with bound sqrt(a·sqrt(3)), so the product has the variance a²/3 of a
    uniform(−a, a) entry; "sum" draws both with bound a/sqrt(2), so the sum has it."""

    def __init__(
        self,
        graph: sp.csr_matrix,
        m: int,
        dim: int,
        layers: int,
        device: torch.device,
        combine: str = "mult",
        seed: int = 0,
    ) -> None:
        super().__init__(graph, dim, layers, device)
        if combine not in ("mult", "sum"):
            raise ValueError(f"qr combine must be 'mult' or 'sum', got {combine!r}")
        self.combine = combine
        q, r = qr_rows(self.n_entities, m)
        n_q = -(-self.n_entities // m)
        a = self.entity_bound
        bound = float(np.sqrt(a * np.sqrt(3.0))) if combine == "mult" else a / float(np.sqrt(2.0))
        generator = torch.Generator().manual_seed(seed)
        self.Q = nn.Parameter(_uniform((n_q, dim), bound, generator).to(device))
        self.R = nn.Parameter(_uniform((m, dim), bound, generator).to(device))
        self.q_rows = torch.from_numpy(q).to(device)
        self.r_rows = torch.from_numpy(r).to(device)

    def layer0(self) -> torch.Tensor:
        Q, R = self.Q[self.q_rows], self.R[self.r_rows]
        return Q * R if self.combine == "mult" else Q + R


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
        self.n_users = graph.shape[0]
        self.m_c, self.layers, self.device = m_c, layers, device
        generator = torch.Generator().manual_seed(seed)
        codebook = torch.empty(m_c, dim)
        nn.init.xavier_uniform_(codebook, generator=generator)
        self.E_c = nn.Parameter(codebook.to(device))
        self.set_assignment(S_c_idx, S_c_w)

    def set_assignment(self, S_c_idx: np.ndarray, S_c_w: np.ndarray) -> None:
        """Install S^c, rebuild A^c (Eq. 13) and the propagation operator P."""
        # the old P goes first: holding it beside the new one was the training peak (+1.56 GB at 1.3M entities)
        self.P = torch.empty(0)
        self.S_c_idx = np.array(S_c_idx, dtype=np.int64, copy=True)
        self.S_c_w = np.array(S_c_w, dtype=np.float32, copy=True)
        adj = to_torch_csr(expanded_adjacency(self.graph, self.S_c_idx, self.S_c_w, self.m_c), self.device)
        B = sp.vstack([assignment_matrix(self.S_c_idx, self.S_c_w, self.m_c), sp.identity(self.m_c, format="csr")])
        self.P = propagate_columns(adj, B, self.layers)  # (N + m_c, m_c), never a dense B beside it
        self.idx_t = torch.from_numpy(self.S_c_idx).to(self.device)
        self.w_t = torch.from_numpy(self.S_c_w).to(self.device)
        del adj, B
        release_freed_memory()  # the build's temporaries, cached by malloc (c2f/trainer/data/memory.py)

    def release_operator(self) -> None:
        """Drop P (the stage's largest array: 1.56 GB at 1.3M entities, m_c = 300) while the model is not trained
        or evaluated: during the fine stage, which reads only E_c and S^c, and during export once H_full and
        H_meta are taken. The next use rebuilds it."""
        self.P = torch.empty(0)

    def _operator(self) -> torch.Tensor:
        if self.P.numel() == 0:
            self.set_assignment(self.S_c_idx, self.S_c_w)
        return self.P

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._operator().index_select(0, rows) @ self.E_c
        return h, sparse_rows_squared_norms(self.E_c, self.idx_t[rows], self.w_t[rows])

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self._operator()[: self.n_entities] @ self.E_c

    @torch.no_grad()
    def meta_embeddings(self) -> torch.Tensor:
        """H_meta (m_c, d): the propagated codebook nodes (Eq. 7)."""
        return self._operator()[self.n_entities :] @ self.E_c

    def snapshot(self) -> dict:
        return {
            "E_c": self.E_c.detach().clone(),
            "S_c_idx": self.S_c_idx.copy(),
            "S_c_w": self.S_c_w.copy(),
            **self._bias_state(),
        }

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            self.E_c.copy_(state["E_c"])
        self._restore_bias(state)
        if not (np.array_equal(state["S_c_idx"], self.S_c_idx) and np.array_equal(state["S_c_w"], self.S_c_w)):
            self.set_assignment(state["S_c_idx"], state["S_c_w"])


def sparse_rows_squared_norms(codebook: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """||Σ_j w_j C[i_j]||² (b,) for rows given by ``idx, w: (b, t)`` over ``codebook`` C (m, d), differentiable in C.

    Σ_jk w_j w_k G[i_j, i_k] with G = C·Cᵀ (m × m): gathers t² scalars per row instead of t vectors of d, which
    makes the backward pass several times cheaper."""
    m, t = codebook.shape[0], idx.shape[1]
    gram = (codebook @ codebook.T).reshape(-1)
    flat = (idx[:, :, None] * m + idx[:, None, :]).reshape(-1)
    pair = gram.index_select(0, flat).view(-1, t, t)  # (b, t, t); 1-D index_select has a fast backward
    return torch.einsum("bj,bjk,bk->b", w, pair, w)


@torch.no_grad()
def score_spread(model: EmbeddingModel, sample: int = 1024, seed: int = 0) -> float:
    """Standard deviation of h_u·h_i over a fixed sample of up to ``sample`` users × ``sample`` items: the scale
    a model's scores live on (a float; item biases excluded)."""
    g = torch.Generator().manual_seed(seed)
    n_items = model.n_entities - model.n_users
    users = torch.randperm(model.n_users, generator=g)[:sample]
    items = model.n_users + torch.randperm(n_items, generator=g)[:sample]
    device = next(model.parameters()).device
    h_u, _ = model.batch_embeddings(users.to(device))
    h_i, _ = model.batch_embeddings(items.to(device))
    return float((h_u @ h_i.T).std())


class Fine(EmbeddingModel):
    """C2F fine stage on top of a frozen coarse stage (Eq. 14-22).

    E_c (m_c, d) and S^c frozen; trainable E_r (m_r, d); S^r as S_r_idx/S_r_w (m_c, t_r).
    ``forward="paper"``: Ê^c = (1 − w_cr)·E_c + w_cr·S^r·F with F = S_λ(E_r) (Eq. 16-17), layer 0 =
    [S^c·Ê^c; Ê^c; F] (Eq. 18-19), propagated on Â^r (Eq. 20-21). Layer 0 = C0 + B_r·F where
    C0 = [S^c; I; 0]·(1 − w_cr)·E_c is constant and B_r = [w_cr·S^c·S^r; w_cr·S^r; I].
    ``forward="released"`` (the authors' code): F = tanh(S_λ(E_r)), layer 0 = [tanh(S^c·E_c); Ê^c; F] (entity rows
    from the unrefined, frozen codebook: C0 = [tanh(S^c·E_c); (1 − w_cr)·E_c; 0], B_r = [0; w_cr·S^r; I]), and
    after each propagation step the coarse rows are re-mixed with their fine rows (:meth:`_released_step`).
    Both are linear in F, so H = M·C0 + (M·B_r)·F with M the layer mean of the (corrected) propagation; buffers
    ``H_const`` and ``P`` hold M·C0 and M·B_r, recomputed once per assignment. The entity rows of layer 0 itself
    (for the L2 term) come per batch from S^c's terms (:meth:`entity_layer0`, :meth:`entity_layer0_squared_norms`).
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
        forward: str = "paper",
        bias_start: str = "coarse",
    ):
        super().__init__()
        if bias_start not in ("coarse", "rescaled"):
            raise ValueError(f"bias_start must be 'coarse' or 'rescaled', got {bias_start!r}")
        self.graph = graph
        self.bias_start = bias_start
        self.fine_forward = make_forward(forward)
        self.n_entities = coarse.n_entities
        self.n_users = coarse.n_users
        self.S_c_idx, self.S_c_w = coarse.S_c_idx, coarse.S_c_w
        self.Sc_idx_t = torch.from_numpy(np.asarray(self.S_c_idx, np.int64)).to(device)  # frozen: set once
        self.Sc_w_t = torch.from_numpy(np.asarray(self.S_c_w, np.float32)).to(device)
        self.E_c = coarse.E_c.detach().clone()
        self.m_c, self.m_r = self.E_c.shape[0], E_r.shape[0]
        self.w_cr, self.soft_lambda, self.layers, self.device = w_cr, soft_lambda, layers, device
        self.E_r = nn.Parameter(torch.from_numpy(np.asarray(E_r, np.float32)).to(device))
        # The coarse stage's item biases were learned beside its scores' scale; a fine forward may score on another
        # (the released one's tanh and per-layer correction shrink h_u·h_i several-fold), where biases carried
        # unchanged outweigh the scores. bias_start "rescaled" starts each forward from them rescaled to its own
        # spread; "coarse" carries them unchanged (TrainConfig.fine_bias_start says which is the default and why).
        self.coarse_item_bias: torch.Tensor | None = None
        self.coarse_spread = 0.0
        if coarse.item_bias is not None:
            self.coarse_item_bias = coarse.item_bias.detach().clone()
            self.coarse_spread = score_spread(coarse) if bias_start == "rescaled" else 0.0
        self.set_assignment(S_r_idx, S_r_w)
        if self.coarse_item_bias is not None:
            self.enable_item_bias(self.starting_item_bias())

    @property
    def forward_kind(self) -> FineForwardName:
        """The forward's name, "paper" or "released" (what the manifest's config records)."""
        return self.fine_forward.name

    def fine_rows(self) -> torch.Tensor:
        """F (m_r, d): the fine nodes' layer-0 rows, S_λ(E_r) (paper) or tanh(S_λ(E_r)) (released)."""
        return self.fine_forward.fine_rows(self.thresholded())

    def thresholded(self) -> torch.Tensor:
        """S_λ(E_r) (Eq. 16), (m_r, d). λ = 0 (ablation C) is the identity, with gradient 1 at zero entries too
        (sign·relu would leave the zero-padded entries of the SparsePCA init at 0 forever)."""
        if self.soft_lambda <= 0:
            return self.E_r
        return torch.sign(self.E_r) * torch.relu(self.E_r.abs() - self.soft_lambda)

    def set_assignment(self, S_r_idx: np.ndarray, S_r_w: np.ndarray) -> None:
        """Install S^r, rebuild A^r (Eq. 14) and the operators M·C0 and M·B_r."""
        self.P = self.H_const = torch.empty(0)  # the old operators go before the new ones are built
        self.S_r_idx = np.array(S_r_idx, dtype=np.int64, copy=True)
        self.S_r_w = np.array(S_r_w, dtype=np.float32, copy=True)
        self.Sr_idx_t = torch.from_numpy(self.S_r_idx).to(self.device)
        self.Sr_w_t = torch.from_numpy(self.S_r_w).to(self.device)
        adj_np = expanded_adjacency(self.graph, self.S_c_idx, self.S_c_w, self.m_c, self.S_r_idx, self.S_r_w, self.m_r)
        adj = to_torch_csr(adj_np, self.device)
        S_c = assignment_matrix(self.S_c_idx, self.S_c_w, self.m_c)
        S_r = assignment_matrix(self.S_r_idx, self.S_r_w, self.m_r)
        E_c = self.E_c.cpu().numpy()
        layer0_columns, fine_part, step = self.fine_forward.operators(self, adj, S_c, S_r, E_c)
        # C0 (N + m_c + m_r, d) is made and propagated a block of columns at a time, never whole: at a million users
        # and d = 128, C0 and the running layer sums would be about 3 GB beside the 0.7 GB result
        C0 = DenseColumns(self.n_entities + self.m_c + self.m_r, E_c.shape[1], layer0_columns)
        self.H_const = propagate_columns(adj, C0, self.layers, step)
        self.P = propagate_columns(adj, fine_part, self.layers, step)
        del adj, adj_np, step, C0, fine_part
        release_freed_memory()

    def set_forward(self, forward: str) -> None:
        """Switch to the ``"paper"`` or ``"released"`` forward and rebuild the operators (E^r, S^r unchanged); item
        biases restart from the coarse stage's (:meth:`starting_item_bias`)."""
        self.fine_forward = make_forward(forward)
        self.set_assignment(self.S_r_idx, self.S_r_w)
        if self.item_bias is not None and self.coarse_item_bias is not None:
            with torch.no_grad():
                self.item_bias.copy_(self.starting_item_bias())

    def starting_item_bias(self) -> torch.Tensor:
        """(n_items,) the coarse stage's item biases: unchanged (``bias_start="coarse"``), or times (this forward's
        score spread / the coarse stage's) so that biases and scores keep the proportion the coarse stage learned."""
        assert self.coarse_item_bias is not None
        if self.bias_start == "coarse" or self.coarse_spread <= 0.0:
            return self.coarse_item_bias.clone()
        return self.coarse_item_bias * (score_spread(self) / self.coarse_spread)

    def entity_layer0(self, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """Layer-0 rows (b, d) of the entities ``rows`` (C0 + B_r·F restricted to them): S^c·Ê^c (paper, Eq. 19) or
        tanh(S^c·E_c) (released), from each row's t_c terms."""
        return self.fine_forward.entity_layer0(self, rows, F)

    def release_operator(self) -> None:
        """Drop H_const and P ((N + m) × (d + m_r) floats) until the next use rebuilds them (export, once it has
        taken H_full and H_meta)."""
        self.P = self.H_const = torch.empty(0)

    def _operators(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.P.numel() == 0:
            self.set_assignment(self.S_r_idx, self.S_r_w)
        return self.H_const, self.P

    def entity_layer0_squared_norms(self, rows: torch.Tensor, F: torch.Tensor) -> torch.Tensor:
        """||layer-0 row||² (b,) of the entities ``rows``, as :meth:`entity_layer0` ``.pow(2).sum(1)`` without
        gathering (b, t_c, d)."""
        return self.fine_forward.entity_layer0_squared_norms(self, rows, F)

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        F = self.fine_rows()
        sq = self.entity_layer0_squared_norms(rows, F)
        H_const, P = self._operators()
        return H_const[rows] + P[rows] @ F, sq

    @torch.no_grad()
    def all_nodes(self) -> torch.Tensor:
        """H^r (N + m_c + m_r, d) (Eq. 21)."""
        H_const, P = self._operators()
        return (P @ self.fine_rows()).add_(H_const)  # one (N + m, d) array, not two

    @torch.no_grad()
    def full_embeddings(self) -> torch.Tensor:
        return self.all_nodes()[: self.n_entities]

    @torch.no_grad()
    def refined_codebook(self) -> torch.Tensor:
        """Ê^c (m_c, d) (Eq. 17), the layer-0 refined coarse codebook."""
        return self.refine(self.fine_rows())

    def refine(self, F: torch.Tensor) -> torch.Tensor:
        """Ê^c = (1 − w_cr)·E_c + w_cr·S^r·F (m_c, d), differentiable in F."""
        mix = torch.einsum("mt,mtd->md", self.Sr_w_t, F[self.Sr_idx_t])
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
            **self._bias_state(),
        }

    def restore(self, state: dict) -> None:
        with torch.no_grad():
            self.E_r.copy_(state["E_r"])
        self._restore_bias(state)
        self.soft_lambda = state["soft_lambda"]
        if not (np.array_equal(state["S_r_idx"], self.S_r_idx) and np.array_equal(state["S_r_w"], self.S_r_w)):
            self.set_assignment(state["S_r_idx"], state["S_r_w"])
