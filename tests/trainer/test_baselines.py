"""The equal-memory baselines (hash, qr) trained under a memory budget on planted communities: they learn the
structure, the budget is met and recorded, and the service's scorer reproduces the trainer's ranking."""

from __future__ import annotations

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.contract.config import TrainConfig
from c2f.contract.footprint import footprint, planned_embedding_bytes
from c2f.contract.methods import exact_embeddings
from c2f.service.scoring import Recommender
from c2f.trainer.data import load_dataset
from c2f.trainer.export import build_arrays, export
from c2f.trainer.methods import single_phase_model
from c2f.trainer.synthetic import popularity_recall
from c2f.trainer.train import TrainedModel, train

# 600 users, 400 items, d = 32: the full table is 128,000 bytes; 12,800 bytes = 10% = 100 rows of d floats (hash
# B = 100; qr m = 88 with 12 quotient rows). Few epochs with a larger lr and sparse validation keep the module cheap
# (qr's "sum" is checked against the contract's math below, without training); the margins hold with room.
# float32 storage without item biases, so that the served scores can be compared with the trainer's to 1e-4 and the
# sizes are the round numbers above; the default storage (float16, item biases) is sized in the test below.
BASE = dict(dim=32, batch_size=1024, epochs=12, eval_every=4, lr=0.05, seed=7, store_dtype="float32", biases=False)
RUNS = {
    "hash": dict(method="hash", budget_bytes=12_800),
    "qr": dict(method="qr", budget=10.0),
}


@pytest.fixture(scope="module")
def data(synthetic_lightgcn_dir):
    return load_dataset(str(synthetic_lightgcn_dir))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """Each run trained once, exported into one artifact root: name -> (TrainedModel, version directory)."""
    root = tmp_path_factory.mktemp("baselines")
    out = {}
    for name, values in RUNS.items():
        model = train(data, TrainConfig(**BASE, **values))  # type: ignore[arg-type]
        version, _ = export(model, data, root)
        out[name] = (model, version_path(root, version))
    return out


def _chance_recall(data, k: int = 20) -> float:
    """Expected Recall@k of a uniformly random ranking of each test user's unseen items (k / candidates)."""
    seen = np.asarray((data.train + data.valid).sum(axis=1)).ravel()
    has_test = np.asarray(data.test.sum(axis=1)).ravel() > 0
    return float(np.mean(np.minimum(1.0, k / (data.n_items - seen[has_test]))))


def test_baselines_beat_random_and_popularity_rankings(data, trained):
    chance = _chance_recall(data)
    popularity = popularity_recall(data, k=20)
    assert chance < 0.06 and popularity < 0.15
    for name, (model, _) in trained.items():
        recall = model.test["recall@20"]
        assert recall > max(4 * chance, popularity + 0.1), f"{name}: R@20 {recall:.3f}, chance {chance:.3f}"


def test_the_budget_is_met_and_recorded(trained):
    expected_sizes = {"hash": ("hash_buckets", 100), "qr": ("qr_buckets", 88)}
    for name, (model, path) in trained.items():
        artifact = load_artifact(path)
        report, fp = artifact.manifest.budget, artifact.manifest.footprint
        assert report is not None and fp is not None
        knob, value = expected_sizes[name]
        assert (report.knob, report.value, report.sizes) == (knob, value, {knob: value})
        assert getattr(model.config, knob) == value == artifact.manifest.config[knob]
        assert report.achieved_bytes == fp.embedding_bytes == report.planned_bytes <= report.budget_bytes
        assert report.next_planned_bytes is not None and report.next_planned_bytes > report.budget_bytes
        rows = value if name == "hash" else value + -(-1000 // value)
        assert report.budget_bytes == 12_800 and report.budget_percent == (10.0 if name == "qr" else None)
        assert fp.params_paper == rows * 32 and fp.embedding_bytes == rows * 32 * 4
        assert set(fp.components) == {"id_maps", "graph", "hash_table" if name == "hash" else "qr_tables"}


def test_served_exactly_in_both_modes_with_the_trainers_ranking(data, trained):
    """The service recomputes the propagated embeddings from the stored small tables (and the hash seed): the
    scores match the trainer's full_embeddings and the top-20 lists are the trainer's, in either serving mode."""
    users = np.arange(data.n_users)
    for name, (model, path) in trained.items():
        artifact = load_artifact(path)
        H = model.model.full_embeddings().cpu().numpy()
        expected_scores = H[users] @ H[data.n_users :].T
        for mode in ("exact", "compressed"):
            rec = Recommender(artifact, mode)
            assert rec.scoring == "dense" and "exact_H_full" in rec.memory_bytes()
            np.testing.assert_allclose(rec.user_scores(users), expected_scores, rtol=1e-4, atol=1e-5)
            for u in users[::7]:
                scores = expected_scores[u].copy()
                scores[rec.seen_items(int(u))] = -np.inf
                top = np.lexsort((np.arange(len(scores)), -scores))[:20]
                served, _ = rec.recommend(int(u), 20)
                gap = np.sort(scores)[::-1][:21]
                if np.min(np.abs(np.diff(gap))) > 1e-4:  # no near-tie float noise could reorder
                    assert served.tolist() == top.tolist(), f"{name} {mode} user {u}"
        served_metrics = artifact.manifest.metrics.served
        assert served_metrics["exact"].test["recall@20"] == pytest.approx(model.test["recall@20"], abs=1e-3)
        assert served_metrics["compressed"].test == served_metrics["exact"].test


@pytest.mark.parametrize(
    ("method", "extra"), [("hash", {"hash_buckets": 37}), ("qr", {"qr_buckets": 9}), ("qr", {"qr_combine": "sum"})]
)
def test_the_models_propagate_what_the_service_reconstructs(data, method, extra):
    """Untrained (random init): the torch model's layer 0 is the contract's map of its tables, and its propagated
    embeddings are the service's exact reconstruction from the exported arrays."""
    import torch

    from c2f.contract.reconstruct import exact_ud, hash_buckets, qr_layer0
    from c2f.trainer.export import build_manifest

    config = TrainConfig(**{**BASE, "method": method, "epochs": 1, **extra})  # type: ignore[arg-type]
    model = single_phase_model(data, config, torch.device("cpu"))
    n = data.n_users + data.n_items
    X0 = model.layer0().detach().numpy()
    if method == "hash":
        table = model.table.detach().numpy()
        assert table.shape == (37, 32)
        np.testing.assert_array_equal(X0, table[hash_buckets(n, 37, config.seed)])
    else:
        Q, R = model.Q.detach().numpy(), model.R.detach().numpy()
        assert R.shape[0] == (9 if "qr_buckets" in extra else 32) and Q.shape[0] == -(-n // R.shape[0])
        np.testing.assert_allclose(X0, qr_layer0(Q, R, n, config.qr_combine), rtol=1e-6)
    H = model.full_embeddings().numpy()
    np.testing.assert_allclose(H, exact_ud(data.train, X0, config.layers), rtol=1e-4, atol=1e-6)
    trained = TrainedModel(config=config, model=model, coarse=None, history=[], timings={}, valid=None, test={})
    arrays = build_arrays(trained, data)
    np.testing.assert_allclose(exact_embeddings(arrays, build_manifest(trained, data)), H, rtol=1e-4, atol=1e-6)

    # the default storage (float16 tables, float32 item biases): the export has the bytes a budget plans with
    default = TrainConfig(method=method, dim=32, **extra)  # type: ignore[arg-type]
    assert default.store_dtype == "float16" and default.biases
    model = single_phase_model(data, default, torch.device("cpu"))
    model.enable_item_bias()
    trained = TrainedModel(config=default, model=model, coarse=None, history=[], timings={}, valid=None, test={})
    arrays = build_arrays(trained, data)
    tables = [a for name, a in arrays.items() if name in ("hash_table", "qr_Q", "qr_R")]
    assert tables and all(t.dtype == np.float16 for t in tables)
    planned = planned_embedding_bytes(method, default, data.n_users, data.n_items)
    assert footprint(arrays, method).embedding_bytes == planned == sum(t.nbytes for t in tables) + 4 * data.n_items


def test_an_impossible_budget_fails_before_training(data):
    from c2f.contract.budget import BudgetError

    with pytest.raises(BudgetError, match="below the smallest qr model on 600 users and 400 items"):
        train(data, TrainConfig(**{**BASE, "method": "qr", "budget": 5.0}))  # type: ignore[arg-type]


def test_the_hashing_operator_gives_the_propagated_embeddings_and_gradients(data):
    """Hashed trained through P = M·H is the same model as Hashed propagating every batch: equal batch embeddings,
    squared layer-0 norms, table gradients and full embeddings (float32 rounding aside)."""
    import torch

    from c2f.trainer.models import Hashed

    cpu = torch.device("cpu")
    rows = torch.from_numpy(np.random.default_rng(0).integers(0, data.n_users + data.n_items, 300))
    models = [Hashed(data.train, 37, 16, 3, cpu, seed=5, operator=flag) for flag in (False, True)]
    outputs = []
    for model in models:
        h, sq = model.batch_embeddings(rows)
        ((h * torch.linspace(-1, 1, 16)).sum() + sq.sum()).backward()
        outputs.append((h.detach(), sq.detach(), model.table.grad.clone(), model.full_embeddings()))
    assert models[1].P.shape == (data.n_users + data.n_items, 37) and models[0].P.numel() == 0
    for propagated, through_operator in zip(*outputs, strict=True):
        torch.testing.assert_close(through_operator, propagated, rtol=1e-5, atol=1e-6)
    models[1].release_operator()
    assert models[1].P.numel() == 0
    torch.testing.assert_close(models[1].full_embeddings(), outputs[0][3], rtol=1e-5, atol=1e-6)  # rebuilt on use


def test_the_hashing_operator_is_used_where_it_pays():
    from c2f.trainer.models import hash_operator_pays

    # Gowalla with the default batch (3 × 8192 rows), 3 layers, validation carved from train (1,455,738 adjacency
    # entries): B = 2,193 (2%) pays, B = 6,443 (5%) does not (its products cost more than propagating)
    assert hash_operator_pays(70_839, 2_193, 3 * 8192, 3, 1_455_738)
    assert not hash_operator_pays(70_839, 6_443, 3 * 8192, 3, 1_455_738)
    # a million users: P would not fit its byte cap, however few the buckets
    assert not hash_operator_pays(1_300_000, 1_000, 3 * 8192, 3, 26_600_000)
    # a smaller batch propagates more often an epoch: the operator pays up to more buckets
    assert hash_operator_pays(70_839, 3_000, 3 * 1024, 3, 1_620_256)
