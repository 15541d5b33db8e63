"""End-to-end training on planted communities: every method learns the structure, C2F refines LEGCF, and the
published artifact serves what was trained."""

from __future__ import annotations

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact
from c2f.contract.config import TrainConfig
from c2f.contract.methods import exact_embeddings
from c2f.contract.reconstruct import compressed_embeddings
from c2f.trainer.data import load_dataset
from c2f.trainer.pipeline import train_and_publish
from c2f.trainer.synthetic import popularity_recall

# Small but real: 600 users, 400 items, 8 planted communities; the whole module trains in well under a minute.
# fine_fallback off: these tests inspect the fine stage's artifact (the fallback has its own test in test_options.py).
SMALL = dict(
    dim=32, m_c=24, m_r=8, t_r=3, d_r=16, batch_size=1024, batch_size_fine=1024, epochs=40, seed=7, fine_fallback=False
)


@pytest.fixture(scope="module")
def data(synthetic_lightgcn_dir):
    return load_dataset(str(synthetic_lightgcn_dir))


@pytest.fixture(scope="module")
def published(synthetic_lightgcn_dir, tmp_path_factory):
    """One published artifact per method, trained once for the module."""
    root = tmp_path_factory.mktemp("artifacts")
    progress: dict[str, list[dict]] = {}
    out = {}
    for method in ("ud", "legcf", "c2f"):
        events = progress.setdefault(method, [])
        out[method] = train_and_publish(
            str(synthetic_lightgcn_dir), TrainConfig(method=method, **SMALL), root, progress=events.append
        )
    return root, out, progress


def test_every_method_beats_popularity_by_a_clear_margin(data, published):
    _, out, _ = published
    baseline = popularity_recall(data, k=20)
    for method, model in out.items():
        recall = model.manifest.metrics.test("trained")["recall@20"]
        assert recall > baseline + 0.25, f"{method}: Recall@20 {recall:.3f} vs popularity {baseline:.3f}"


def test_c2f_records_both_stages_and_adds_a_small_parameter_overhead(published):
    """The fine stage's extra parameters are the fine codebook and S^r only. Whether it beats its own coarse stage
    is data-dependent: here (planted data, released mechanics, fallback off) it tested 0.327 against its coarse
    stage's 0.357 NDCG@20 when this test was written, which is why c2f publishes the better-validating stage by
    default (fine_fallback; tested in test_options.py). The run records both stages' validation figures and the
    stage the default would have published."""
    from c2f.trainer.train import kept_stage

    _, out, _ = published
    c2f = out["c2f"].manifest.model_dump()
    kept = c2f["info"]["stage_kept"]
    assert kept["stage"] == "fine"  # fallback off in SMALL
    assert kept["fine_valid"] == c2f["metrics"]["trained"]["valid"]
    default = TrainConfig(**{**SMALL, "fine_fallback": True})
    better = "coarse" if kept["fine_valid"]["ndcg@20"] < kept["coarse_valid"]["ndcg@20"] else "fine"
    assert kept_stage(kept["coarse_valid"], kept["fine_valid"], default) == better
    legcf_params = out["legcf"].manifest.footprint.params_paper
    c2f_params = c2f["footprint"]["params_paper"]
    assert c2f_params == legcf_params + SMALL["m_r"] * SMALL["dim"] + SMALL["t_r"] * SMALL["m_c"]


def test_auto_forward_publishes_the_forward_whose_start_validated_better(published):
    """The default fine_forward "auto": both starting states are recorded, the better one trains (phase 1 starts
    from its figures) and the manifest's config names it, so exact mode reconstructs that forward (checked by
    test_served_metrics_are_recorded_and_exact_mode_reproduces_training)."""
    _, out, _ = published
    manifest = out["c2f"].manifest
    choice = manifest.info["fine_forward"]
    starts, criterion = choice["start_valid"], choice["criterion"]
    assert set(starts) == {"released", "paper"}
    assert choice["chosen"] == ("released" if starts["released"] >= starts["paper"] else "paper")
    assert manifest.config["fine_forward"] == choice["chosen"]
    phase1 = next(p for p in manifest.info["phases"] if p["stage"] == "fine" and p["phase"] == 1)
    assert phase1["start_valid"][criterion] == starts[choice["chosen"]]


def test_assignments_have_exactly_t_nonzeros_and_fine_values_are_sparse(published):
    _, out, _ = published
    artifact = load_artifact(out["c2f"].path)
    a = artifact.arrays
    n_entities = artifact.n_users + artifact.n_items
    assert a["S_c_idx"].shape == (n_entities, SMALL_T_C)
    assert all(len(set(row)) == SMALL_T_C for row in a["S_c_idx"].tolist())
    assert a["S_r_idx"].shape == (SMALL["m_c"], SMALL["t_r"])
    assert all(len(set(row)) == SMALL["t_r"] for row in a["S_r_idx"].tolist())
    # λ is chosen at init for the target sparsity (lambda_schedule "fixed"), then kept: E^r stays sparse
    info = out["c2f"].manifest.info
    assert info["fine_nonzero_init"] == pytest.approx(TrainConfig().target_nonzero, abs=0.02)
    density = len(a["E_r_data"]) / (SMALL["m_r"] * SMALL["dim"])
    assert 0 < density < 1 and density == pytest.approx(info["fine_nonzero_final"], abs=1e-6)
    assert (a["E_r_data"] != 0).all()


SMALL_T_C = TrainConfig().t_c


def test_served_metrics_are_recorded_and_exact_mode_reproduces_training(data, published):
    _, out, _ = published
    for method, model in out.items():
        metrics = model.manifest.metrics.model_dump()
        trained = metrics["trained"]["test"]["recall@20"]
        assert metrics["served"]["exact"]["test"]["recall@20"] == pytest.approx(trained, abs=1e-3)
        compressed = metrics["served"]["compressed"]["test"]["recall@20"]
        assert compressed > 0.9 * trained, f"{method}: served {compressed:.3f} vs trained {trained:.3f}"
        artifact = load_artifact(model.path)
        H = exact_embeddings(artifact.arrays, artifact.manifest)
        assert H.shape == (data.n_users + data.n_items, SMALL["dim"])
        if method != "ud":
            served = compressed_embeddings(
                artifact.arrays["S_c_idx_served"], artifact.arrays["S_c_w_served"], artifact.arrays["H_meta"]
            )
            assert np.linalg.norm(served - H) < 0.5 * np.linalg.norm(H)


def test_history_progress_and_curve(published):
    root, out, progress = published
    for method, model in out.items():
        history = model.manifest.metrics.history
        assert history and all(r["loss"] > 0 for r in history)
        assert any(r["valid"] for r in history)
        assert (model.path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        stages = {e["stage"] for e in progress[method]}
        assert "loading" in stages and "export" in stages
    assert any(r["assignment_update"] for r in out["legcf"].manifest.metrics.history)
    assert any(r["stage"] == "fine" and r["assignment_update"] for r in out["c2f"].manifest.metrics.history)


def test_training_is_reproducible_for_a_seed(synthetic_lightgcn_dir, tmp_path):
    config = TrainConfig(method="legcf", **{**SMALL, "epochs": 2})
    a = train_and_publish(str(synthetic_lightgcn_dir), config, tmp_path / "a")
    b = train_and_publish(str(synthetic_lightgcn_dir), config, tmp_path / "b")
    assert a.manifest.metrics.test("trained") == b.manifest.metrics.test("trained")


def test_c2f_can_start_from_a_published_coarse_stage(synthetic_lightgcn_dir, published, tmp_path):
    _, out, _ = published
    legcf = out["legcf"]
    config = TrainConfig(method="c2f", coarse_from=str(legcf.path), **{**SMALL, "epochs": 2})
    model = train_and_publish(str(synthetic_lightgcn_dir), config, tmp_path)
    coarse_test = model.manifest.metrics.trained.coarse_test
    # the coarse stage comes back from the artifact, stored as float16 (store_dtype default): close, not identical
    assert coarse_test == pytest.approx(legcf.manifest.metrics.test("trained"), abs=2e-3)
    assert not any(r["stage"] == "coarse" for r in model.manifest.metrics.history)


def test_coarse_from_other_data_is_refused(published, tmp_path):
    from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

    users, items, _, _ = planted_communities(n_users=200, n_items=100, seed=3)
    other = write_lightgcn_dir(tmp_path / "other", users, items)
    config = TrainConfig(method="c2f", coarse_from=str(published[1]["legcf"].path), **{**SMALL, "epochs": 1})
    with pytest.raises(ValueError, match="different data"):
        train_and_publish(str(other), config, tmp_path / "out")


def test_served_fit_recovers_an_exactly_two_sparse_composition():
    """When H_full really is 2-sparse in the codebook, re-picking (matching pursuit) finds it; keeping the wrong
    trained indices and refitting only the weights cannot."""
    from c2f.trainer.export import served_assignment

    rng = np.random.default_rng(0)
    H_meta = rng.standard_normal((12, 32)).astype(np.float32)
    true_idx = np.stack([rng.choice(12, 2, replace=False) for _ in range(200)])
    true_w = rng.uniform(0.2, 1.0, (200, 2)).astype(np.float32)
    H_full = compressed_embeddings(true_idx, true_w, H_meta)
    wrong_idx = (true_idx + 5) % 12
    idx_w, w_w, C_w = served_assignment(wrong_idx, H_meta, H_full, "weights")
    idx_r, w_r, C_r = served_assignment(wrong_idx, H_meta, H_full, "reassign", rounds=0)
    err_weights = np.linalg.norm(compressed_embeddings(idx_w, w_w, C_w) - H_full)
    err_reassign = np.linalg.norm(compressed_embeddings(idx_r, w_r, C_r) - H_full)
    assert err_reassign < 1e-3 * np.linalg.norm(H_full) < err_weights
    assert {frozenset(r) for r in idx_r.tolist()} == {frozenset(r) for r in true_idx.tolist()}


def test_item_attributes_travel_inside_the_artifact(tmp_path):
    """A dataset's item attribute table is published with the model (checksummed with every array), so serving
    filters on it without the dataset: where community = c lists only community c's items, in the model's order."""
    from c2f.service.filters import ItemFilter
    from c2f.service.scoring import Recommender
    from c2f.trainer.synthetic import planted_communities, write_interactions_csv

    users, items, community_of_user, community_of_item = planted_communities(seed=4)
    csv = write_interactions_csv(tmp_path / "data" / "plays.csv", users, items)
    rows = "".join(f"i{i},c{c},{'even' if i % 2 == 0 else 'odd'}\n" for i, c in enumerate(community_of_item))
    (tmp_path / "data" / "plays.items.csv").write_text("item,community,parity\n" + rows)
    config = TrainConfig(method="ud", **{**SMALL, "epochs": 15})
    published = train_and_publish(str(csv), config, tmp_path / "out")
    artifact = load_artifact(published.path)
    assert published.manifest.dataset.stats["item_attributes"]["columns"] == ["community", "parity"]
    assert published.manifest.footprint.components["attributes"] > 0
    rec = Recommender(artifact)
    assert rec.attributes is not None and rec.attributes.names == ["community", "parity"]
    item_community = np.array([int(community_of_item[int(i[1:])]) for i in rec.item_ids.tolist()])
    user = 0
    planted = int(community_of_user[int(rec.user_ids[user][1:])])
    unfiltered, _ = rec.recommend(user, 20)
    assert (item_community[unfiltered] == planted).mean() >= 0.7  # the model learned the planted communities
    other = (planted + 1) % 8
    mask = rec.attributes.mask([("community", (f"c{other}",))])
    filt = ItemFilter.build(rec.n_items, mask=mask)
    idx, scores = rec.recommend(user, 20, item_filter=filt)
    assert len(idx) == 20 and set(item_community[idx].tolist()) == {other}
    full, full_scores = rec.recommend(user, rec.n_items)
    expected = full[item_community[full] == other][:20]
    assert idx.tolist() == expected.tolist()  # the full ranking, filtered
