"""The factorised models (H = P·E) give exactly what propagating the whole graph gives, gradients included."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from c2f.contract.manifest import Manifest
from c2f.contract.methods import exact_embeddings
from c2f.contract.reconstruct import (
    compressed_embeddings,
    expanded_adjacency,
    propagate,
    refined_coarse_codebook,
    soft_threshold,
)
from c2f.trainer.assignment import metis_assignment
from c2f.trainer.graph import propagate as torch_propagate
from c2f.trainer.graph import to_torch_csr
from c2f.trainer.models import UD, Coarse, Fine

CPU = torch.device("cpu")


def random_graph(n_users=30, n_items=20, density=0.15, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # every user has an item
    return sp.csr_matrix(dense)


def coarse_model(graph, m_c=6, t_c=2, dim=8, layers=2):
    n = graph.shape[0] + graph.shape[1]
    parts = np.arange(n) % m_c
    idx, w = metis_assignment(parts, m_c, t_c, 0.7, seed=1)
    return Coarse(graph, idx, w, m_c, dim, layers, CPU, seed=0)


def test_expanded_adjacency_matches_dense_definition():
    graph = random_graph()
    n_users, n_items = graph.shape
    n = n_users + n_items
    idx, w = metis_assignment(np.arange(n) % 5, 5, 2, 0.8, seed=0)
    adj = expanded_adjacency(graph, idx, w, 5).toarray()
    A = np.zeros((n + 5, n + 5))
    A[:n_users, n_users:n] = graph.toarray()
    A[n_users:n, :n_users] = graph.toarray().T
    for r in range(n):
        for j in range(2):
            A[r, n + idx[r, j]] += w[r, j]
            A[n + idx[r, j], r] += w[r, j]
    d = A.sum(1)
    expected = A / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(adj, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(adj, adj.T, atol=1e-7)


def test_torch_propagation_matches_numpy_and_gradient_is_symmetric_spmm():
    graph = random_graph()
    adj_np = expanded_adjacency(graph)
    X = torch.randn(adj_np.shape[0], 4, requires_grad=True)
    H = torch_propagate(to_torch_csr(adj_np, CPU), X, 3)
    np.testing.assert_allclose(H.detach().numpy(), propagate(adj_np, X.detach().numpy(), 3), rtol=1e-4, atol=1e-5)
    H.sum().backward()
    dense = torch.from_numpy(adj_np.toarray())
    X2 = X.detach().clone().requires_grad_(True)
    layers = [X2]
    for _ in range(3):
        layers.append(dense @ layers[-1])
    (sum(layers) / 4).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), X2.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_coarse_factorised_embeddings_equal_full_propagation_with_gradients():
    graph = random_graph()
    model = coarse_model(graph)
    n = model.n_entities
    adj = to_torch_csr(expanded_adjacency(graph, model.S_c_idx, model.S_c_w, model.m_c), CPU)
    X0 = torch.cat([torch.einsum("nt,ntd->nd", model.w_t, model.E_c[model.idx_t]), model.E_c])
    H = torch_propagate(adj, X0, model.layers)
    rows = torch.tensor([0, 3, n - 1, 5])
    h, e0 = model.batch_embeddings(rows)
    torch.testing.assert_close(h, H[rows], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(e0, X0[rows].pow(2).sum(1), rtol=1e-4, atol=1e-5)
    (g1,) = torch.autograd.grad(h.square().sum(), model.E_c)
    (g2,) = torch.autograd.grad(H[rows].square().sum(), model.E_c)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.meta_embeddings(), H[n:].detach(), rtol=1e-4, atol=1e-5)


def test_coarse_operator_released_during_the_fine_stage_is_rebuilt_on_next_use():
    model = coarse_model(random_graph())
    before = model.full_embeddings().clone()
    model.release_operator()
    assert model.P.numel() == 0  # the (N + m_c, m_c) array is not held
    torch.testing.assert_close(model.full_embeddings(), before)
    assert model.P.shape == (model.n_entities + model.m_c, model.m_c)


def test_fine_factorised_embeddings_equal_eq_17_to_22():
    graph = random_graph()
    coarse = coarse_model(graph)
    m_r, t_r = 4, 2
    rng = np.random.default_rng(0)
    E_r = rng.standard_normal((m_r, 8)).astype(np.float32)
    S_r_idx = np.stack([np.arange(6) % m_r, (np.arange(6) + 1) % m_r], axis=1)
    S_r_w = np.full((6, t_r), 0.5, np.float32)
    fine = Fine(graph, coarse, E_r, S_r_idx, S_r_w, w_cr=0.3, soft_lambda=0.5, layers=2, device=CPU)
    F = soft_threshold(E_r, 0.5)
    E_c = coarse.E_c.detach().numpy()
    refined = refined_coarse_codebook(E_c, S_r_idx, S_r_w, F, 0.3)
    np.testing.assert_allclose(fine.refined_codebook().numpy(), refined, rtol=1e-5, atol=1e-6)
    # Hand computation of Eq. 17 for coarse row 0: (1-w)·E_c[0] + w·(0.5·F[0] + 0.5·F[1]).
    np.testing.assert_allclose(refined[0], 0.7 * E_c[0] + 0.3 * (0.5 * F[0] + 0.5 * F[1]), rtol=1e-5, atol=1e-6)
    adj = expanded_adjacency(graph, coarse.S_c_idx, coarse.S_c_w, 6, S_r_idx, S_r_w, m_r)
    X0 = np.vstack([compressed_embeddings(coarse.S_c_idx, coarse.S_c_w, refined), refined, F])
    H = propagate(adj, X0, 2)
    np.testing.assert_allclose(fine.all_nodes().numpy(), H, rtol=1e-4, atol=1e-5)
    rows = torch.tensor([1, 2, 40])
    h, e0 = fine.batch_embeddings(rows)
    np.testing.assert_allclose(h.detach().numpy(), H[rows.numpy()], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(e0.detach().numpy(), (X0[rows.numpy()] ** 2).sum(1), rtol=1e-4, atol=1e-5)


def _grad_of_square(x: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor:
    """d(sum x²)/d wrt, zeros where x does not depend on it."""
    if not x.requires_grad:
        return torch.zeros_like(wrt)
    (g,) = torch.autograd.grad(x.pow(2).sum(), wrt, retain_graph=True, allow_unused=True)
    return torch.zeros_like(wrt) if g is None else g


def test_fine_layer0_gathered_per_batch_equals_the_dense_c0_plus_b_r_f_with_gradients():
    """entity_layer0 (S^c's t_c terms per row) against the dense definition C0 + B_r·F it replaces, both forwards."""
    from c2f.contract.reconstruct import assignment_matrix

    graph = random_graph()
    coarse = coarse_model(graph)
    n, m_r, w_cr = coarse.n_entities, 4, 0.3
    rng = np.random.default_rng(1)
    E_r = rng.standard_normal((m_r, 8)).astype(np.float32)
    S_r_idx = np.stack([np.arange(6) % m_r, (np.arange(6) + 1) % m_r], axis=1)
    S_r_w = rng.random((6, 2)).astype(np.float32)
    S_c = assignment_matrix(coarse.S_c_idx, coarse.S_c_w, 6).toarray()
    S_r = assignment_matrix(S_r_idx, S_r_w, m_r).toarray()
    E_c = coarse.E_c.detach()
    rows = torch.tensor([0, 3, 29, 30, n - 1])
    for forward in ("paper", "released"):
        fine = Fine(
            graph, coarse, E_r, S_r_idx, S_r_w, w_cr=w_cr, soft_lambda=0.2, layers=2, device=CPU, forward=forward
        )
        F = fine.fine_rows()
        got = fine.entity_layer0(rows, F)
        if forward == "paper":
            C0 = torch.from_numpy(S_c).float() @ ((1 - w_cr) * E_c)
            B_r = w_cr * torch.from_numpy(S_c @ S_r).float()
        else:
            C0 = torch.tanh(torch.from_numpy(S_c).float() @ E_c)
            B_r = torch.zeros(n, m_r)
        want = C0[rows] + B_r[rows] @ F
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        grad_got, grad_want = _grad_of_square(got, fine.E_r), _grad_of_square(want, fine.E_r)
        torch.testing.assert_close(grad_got, grad_want, rtol=1e-5, atol=1e-6)
        assert forward == "released" or grad_got.abs().sum() > 0  # the paper's entity rows do depend on E_r
        # the L2 term's squared norms, taken without the (b, t_c, d) gather, agree in value and gradient
        sq_got, sq_want = fine.entity_layer0_squared_norms(rows, F), want.pow(2).sum(1)
        torch.testing.assert_close(sq_got, sq_want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            _grad_of_square(sq_got, fine.E_r), _grad_of_square(sq_want, fine.E_r), rtol=1e-4, atol=1e-5
        )
        _, sq_batch = fine.batch_embeddings(rows)
        torch.testing.assert_close(sq_batch, sq_want, rtol=1e-5, atol=1e-5)


def test_zero_lambda_trains_every_fine_entry_and_positive_lambda_only_the_live_ones():
    """Ablation C (λ = 0): the zero-padded entries of E^r must learn too; with λ > 0 the dead zone gets no gradient."""
    graph = random_graph()
    coarse = coarse_model(graph)
    E_r = np.zeros((4, 8), np.float32)
    E_r[:, :3] = 2.0  # like the SparsePCA init: d_r live coordinates, the rest zero-padded
    S_r_idx = np.stack([np.arange(6) % 4, (np.arange(6) + 1) % 4], axis=1)
    S_r_w = np.full((6, 2), 0.5, np.float32)
    for lam, padded_learns in ((0.0, True), (0.5, False)):
        fine = Fine(graph, coarse, E_r, S_r_idx, S_r_w, w_cr=0.5, soft_lambda=lam, layers=2, device=CPU)
        h, _ = fine.batch_embeddings(torch.arange(10))
        h.pow(2).sum().backward()
        grad = fine.E_r.grad.numpy()
        assert np.abs(grad[:, :3]).sum() > 0
        assert (np.abs(grad[:, 3:]).sum() > 0) == padded_learns


def test_exact_embeddings_reproduce_each_model():
    graph = random_graph()
    n_users, n_items = graph.shape
    base = {"graph_indptr": graph.indptr, "graph_indices": graph.indices}
    shape = {"n_users": n_users, "n_items": n_items, "d": 8, "layers": 2, "m_r": 4}
    ud = UD(graph, 8, 2, CPU)
    H = exact_embeddings(
        {**base, "E": ud.E.detach().numpy()}, Manifest.model_validate({"method": "ud", "shape": shape})
    )
    np.testing.assert_allclose(H, ud.full_embeddings().numpy(), rtol=1e-4, atol=1e-5)
    coarse = coarse_model(graph)
    arrays = {**base, "S_c_idx": coarse.S_c_idx, "S_c_w": coarse.S_c_w, "E_c": coarse.E_c.detach().numpy()}
    H = exact_embeddings(arrays, Manifest.model_validate({"method": "legcf", "shape": shape}))
    np.testing.assert_allclose(H, coarse.full_embeddings().numpy(), rtol=1e-4, atol=1e-5)
    E_r = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    S_r_idx = np.stack([np.arange(6) % 4, (np.arange(6) + 2) % 4], axis=1)
    S_r_w = np.full((6, 2), 0.5, np.float32)
    fine = Fine(graph, coarse, E_r, S_r_idx, S_r_w, w_cr=0.5, soft_lambda=0.3, layers=2, device=CPU)
    F = sp.csr_matrix(fine.thresholded().detach().numpy())
    arrays.update(S_r_idx=S_r_idx, S_r_w=S_r_w, E_r_indptr=F.indptr, E_r_indices=F.indices, E_r_data=F.data)
    H = exact_embeddings(arrays, Manifest.model_validate({"method": "c2f", "shape": shape, "w_cr": 0.5}))
    np.testing.assert_allclose(H, fine.full_embeddings().numpy(), rtol=1e-4, atol=1e-5)


def test_ud_init_std_draws_a_normal_table_and_none_keeps_xavier():
    import pytest

    from c2f.contract.config import TrainConfig
    from c2f.trainer.methods import single_phase_model

    graph = random_graph(n_users=300, n_items=200)
    n = sum(graph.shape)
    xavier = UD(graph, 16, 2, CPU, seed=3).E.detach()
    assert float(xavier.abs().max()) <= (6.0 / (n + 16)) ** 0.5 + 1e-7  # Xavier uniform's bound
    normal = UD(graph, 16, 2, CPU, seed=3, init_std=0.1).E.detach()
    assert abs(float(normal.std()) - 0.1) < 0.005
    assert abs(float(normal.mean())) < 0.005
    assert float(normal.abs().max()) > 0.3  # a normal's tail, far outside Xavier's ±0.07 here
    np.testing.assert_array_equal(normal, UD(graph, 16, 2, CPU, seed=3, init_std=0.1).E.detach())  # seeded
    for bad in (0, -0.1, "0.1"):
        with pytest.raises(ValueError, match="init_std"):
            TrainConfig(method="ud", init_std=bad)  # type: ignore[arg-type]

    class Data:  # what single_phase_model reads of a dataset
        train = graph
        n_users, n_items = graph.shape

    built = single_phase_model(Data(), TrainConfig(method="ud", dim=16, layers=2, init_std=0.1), CPU)  # type: ignore[arg-type]
    assert abs(float(built.E.detach().std()) - 0.1) < 0.005


def test_choose_forward_keeps_the_better_starting_state_and_its_operators():
    """fine_forward="auto": the forward whose starting state validates better is kept (ties: released), with that
    forward's operators in place (the same embeddings as a model built with it), and both figures recorded."""
    from c2f.contract.config import TrainConfig
    from c2f.trainer.train import choose_forward

    graph = random_graph()
    coarse = coarse_model(graph)
    m_r = 4
    E_r = np.random.default_rng(2).standard_normal((m_r, 8)).astype(np.float32)
    S_r_idx = np.stack([np.arange(6) % m_r, (np.arange(6) + 1) % m_r], axis=1)
    S_r_w = np.full((6, 2), 0.5, np.float32)

    def build(forward: str) -> Fine:
        return Fine(
            graph, coarse, E_r, S_r_idx, S_r_w, w_cr=0.2, soft_lambda=0.1, layers=2, device=CPU, forward=forward
        )

    class StubTrainer:
        def __init__(self, scores: dict[str, float]):
            self.scores = scores

        def validate(self, model: Fine) -> dict[str, float]:
            return {"ndcg@20": self.scores[model.forward_kind]}

    config = TrainConfig()
    for scores, want in (
        ({"released": 0.1, "paper": 0.2}, "paper"),
        ({"released": 0.3, "paper": 0.2}, "released"),
        ({"released": 0.2, "paper": 0.2}, "released"),
    ):
        fine, info = build("released"), {}
        start = choose_forward(StubTrainer(scores), fine, config, info)  # type: ignore[arg-type]
        assert fine.forward_kind == want and start == {"ndcg@20": scores[want]}
        assert info["fine_forward"] == {"chosen": want, "criterion": "ndcg@20", "start_valid": scores}
        torch.testing.assert_close(fine.all_nodes(), build(want).all_nodes())
    assert not torch.allclose(build("paper").all_nodes(), build("released").all_nodes())


def test_bias_start_rescaled_starts_each_forward_on_its_own_score_scale():
    """The coarse stage's biases carried unchanged into a forward whose scores are several times smaller outweigh
    them. With bias_start="rescaled" each forward starts from them rescaled so that bias spread / score spread is
    what the coarse stage learned, whether it was built with that forward or switched to it; with "coarse" (the
    default) they are carried unchanged."""
    from c2f.trainer.models import score_spread

    graph = random_graph(n_users=60, n_items=40, density=0.1)
    coarse = coarse_model(graph)
    coarse.enable_item_bias(torch.linspace(-2.0, 2.0, graph.shape[1]))
    m_r = 4
    E_r = np.random.default_rng(3).standard_normal((m_r, 8)).astype(np.float32)
    S_r_idx = np.stack([np.arange(6) % m_r, (np.arange(6) + 1) % m_r], axis=1)
    S_r_w = np.full((6, 2), 0.5, np.float32)
    coarse_ratio = float(coarse.item_bias.detach().std()) / score_spread(coarse)

    def ratio(fine: Fine) -> float:
        return float(fine.item_bias.detach().std()) / score_spread(fine)

    for forward in ("released", "paper"):
        fine = Fine(graph, coarse, E_r, S_r_idx, S_r_w, 0.2, 0.1, 2, CPU, forward=forward, bias_start="rescaled")
        assert ratio(fine) == pytest.approx(coarse_ratio, rel=1e-4), forward
        carried = Fine(graph, coarse, E_r, S_r_idx, S_r_w, 0.2, 0.1, 2, CPU, forward=forward)
        torch.testing.assert_close(carried.item_bias.detach(), coarse.item_bias.detach())
    released = Fine(graph, coarse, E_r, S_r_idx, S_r_w, 0.2, 0.1, 2, CPU, forward="released", bias_start="rescaled")
    released.set_forward("released")
    # the premise: the released forward scores on a scale well away from the coarse stage's
    assert score_spread(released) < 0.8 * score_spread(coarse)
    released.set_forward("paper")
    assert ratio(released) == pytest.approx(coarse_ratio, rel=1e-4)
    released.set_forward("released")
    assert ratio(released) == pytest.approx(coarse_ratio, rel=1e-4)
    torch.testing.assert_close(coarse.item_bias.detach(), torch.linspace(-2.0, 2.0, graph.shape[1]))  # untouched
