"""The options issue 10 measures: item biases, the released fine-stage mechanics, continuation controls, per-stage
patience and the protocol presets. Each trains on planted data and checks what the option promises."""

from __future__ import annotations

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact
from c2f.contract.config import PROTOCOLS, TrainConfig
from c2f.trainer.pipeline import train_and_publish

SMALL = dict(dim=32, m_c=24, m_r=8, t_r=3, d_r=16, batch_size=1024, batch_size_fine=1024, epochs=20, seed=7)


@pytest.fixture(scope="module")
def legcf(synthetic_lightgcn_dir, tmp_path_factory):
    """A published LEGCF the fine stages and the controls start from."""
    root = tmp_path_factory.mktemp("options")
    return train_and_publish(str(synthetic_lightgcn_dir), TrainConfig(method="legcf", **SMALL), root)


def _from(legcf, dataset, tmp_path, **values):
    config = TrainConfig(coarse_from=str(legcf.path), **{**SMALL, **values})
    return train_and_publish(str(dataset), config, tmp_path)


def test_released_fine_stage_with_biases_is_served_exactly_as_trained(legcf, synthetic_lightgcn_dir, tmp_path):
    """The released forward (tanh layer 0, per-layer correction), softmax S^r, fixed λ and item biases: the
    service's numpy reconstruction (exact mode) reproduces the trained figures, biases included."""
    model = _from(
        legcf,
        synthetic_lightgcn_dir,
        tmp_path,
        method="c2f",
        fine_forward="released",
        fine_sr="softmax",
        lambda_schedule="fixed",
        target_nonzero=0.25,
        biases=True,
        epochs=6,
        fine_fallback=False,  # the fine stage is what is checked (on this data it validates below its coarse stage)
    )
    m = model.manifest.model_dump()
    trained = m["metrics"]["trained"]["test"]
    exact = m["metrics"]["served"]["exact"]["test"]
    for key in ("recall@20", "ndcg@20"):
        assert exact[key] == pytest.approx(trained[key], abs=1e-3)
    a = load_artifact(model.path).arrays
    assert a["item_bias"].shape == (m["shape"]["n_items"],) and np.abs(a["item_bias"]).max() > 0
    row_sums = a["S_r_w"].sum(axis=1)
    # top-t of a softmax, not renormalised; stored as float16 (the default store_dtype), where weights below ~6e-8
    # round to 0
    assert (a["S_r_w"] >= 0).all() and (a["S_r_w"].max(axis=1) > 0).all() and (row_sums <= 1 + 1e-3).all()
    assert m["info"]["soft_lambda_final"] == m["info"]["soft_lambda"]  # λ fixed after init


def test_coarse_continuation_trains_a_third_phase_from_the_published_coarse_stage(
    legcf, synthetic_lightgcn_dir, tmp_path
):
    """One coarse phase 3 that starts from the published LEGCF's validation figures, keeps a trained state that
    validates above them, and publishes a codebook other than the published one."""
    model = _from(legcf, synthetic_lightgcn_dir, tmp_path, method="legcf", continuation="coarse", epochs=4)
    m = model.manifest.model_dump()
    phases = m["info"]["phases"]
    assert [(p["stage"], p["phase"]) for p in phases] == [("coarse", 3)]
    (phase,) = phases
    published = legcf.manifest.model_dump()["metrics"]["trained"]["valid"]["ndcg@20"]
    start, best = phase["start_valid"]["ndcg@20"], phase["best_valid"]["ndcg@20"]
    assert start == pytest.approx(published, abs=1e-3)  # the published state as stored (float16), not a fresh one
    assert phase["best_epoch"] >= 1 and best > start
    assert m["metrics"]["trained"]["valid"]["ndcg@20"] == best
    before, after = load_artifact(legcf.path).arrays, load_artifact(model.path).arrays
    assert not np.array_equal(before["E_c"], after["E_c"])
    np.testing.assert_array_equal(before["S_c_idx"], after["S_c_idx"])  # S^c stays fixed


def test_biases_only_continuation_leaves_the_codebook_untouched(legcf, synthetic_lightgcn_dir, tmp_path):
    model = _from(legcf, synthetic_lightgcn_dir, tmp_path, method="legcf", continuation="biases", biases=True, epochs=3)
    before, after = load_artifact(legcf.path).arrays, load_artifact(model.path).arrays
    np.testing.assert_array_equal(before["E_c"], after["E_c"])
    np.testing.assert_array_equal(before["S_c_idx"], after["S_c_idx"])
    assert after["item_bias"].shape == (model.manifest.model_dump()["shape"]["n_items"],)
    assert [(p["stage"], p["phase"]) for p in model.manifest.model_dump()["info"]["phases"]] == [("coarse", 3)]


def test_biases_only_continuation_needs_biases(legcf, synthetic_lightgcn_dir, tmp_path):
    with pytest.raises(ValueError, match="biases=True"):
        _from(legcf, synthetic_lightgcn_dir, tmp_path, method="legcf", continuation="biases", biases=False, epochs=1)


def test_fine_patience_overrides_the_shared_one(legcf, synthetic_lightgcn_dir, tmp_path):
    """patience_fine = 1 under a shared patience of 50: every fine phase stops at its first evaluation that does
    not beat its best so far (or runs to the epoch cap without one)."""
    model = _from(legcf, synthetic_lightgcn_dir, tmp_path, method="c2f", patience=50, patience_fine=1, epochs=30)
    m = model.manifest.model_dump()
    criterion = TrainConfig(**SMALL).criterion
    fine = [p for p in m["info"]["phases"] if p["stage"] == "fine"]
    assert fine
    for phase in fine:
        scores = [
            r["valid"][criterion]
            for r in m["metrics"]["history"]
            if (r["stage"], r["phase"]) == ("fine", phase["phase"])
        ]
        best, stalls = phase["start_valid"][criterion], []
        for i, score in enumerate(scores):
            if score > best:
                best = score
            else:
                stalls.append(i)
        assert stalls == [len(scores) - 1] or (not stalls and len(scores) == 30)


def test_protocol_preset_fills_what_is_not_given():
    released = TrainConfig.from_dict({"protocol": "released", "lr": 5e-3})
    assert released.valid_from == "test" and released.negatives == 5 and released.criterion == "ndcg@5"
    assert released.lr == 5e-3  # an explicit value wins over the preset
    assert TrainConfig.from_dict({}).valid_from == "train" and PROTOCOLS["ours"] == {}
    with pytest.raises(ValueError, match="protocol"):
        TrainConfig.from_dict({"protocol": "nope"})
    with pytest.raises(ValueError, match="criterion"):
        TrainConfig(criterion="hits@20")


def test_lightgcn_protocol_trains_on_all_of_train_and_logs_a_test_curve(synthetic_lightgcn_dir):
    from c2f.trainer.data import load_dataset
    from c2f.trainer.train import train

    config = TrainConfig.from_dict({"method": "ud", "protocol": "lightgcn", "dim": 16, "epochs": 20, "seed": 1})
    data = load_dataset(str(synthetic_lightgcn_dir), valid_fraction=config.valid_fraction)
    assert data.valid.nnz == 0
    trained = train(data, config)
    curve = [r for r in trained.history if r["test"] is not None]
    assert [r["epoch"] for r in curve] == [10, 20]  # every phase runs its epochs: nothing to early-stop on
    assert curve[-1]["test"] == trained.test  # the model kept is the last epoch's
    assert 0 < curve[0]["elapsed"] < curve[1]["elapsed"]


def test_post_train_accepts_the_options_and_refuses_unknown_values():
    from pydantic import ValidationError

    from c2f.contract.jobspec import TrainParams

    values = {"biases": True, "continuation": "coarse", "patience_fine": 3, "protocol": "released"}
    params = TrainParams(**values, fine_forward="released", fine_sr="softmax", criterion="ndcg@5")
    assert params.criterion == "ndcg@5" and params.continuation == "coarse"
    for bad in ({"fine_forward": "bogus"}, {"criterion": "hits@3"}, {"protocol": "nope"}):
        with pytest.raises(ValidationError):
            TrainParams(**bad)


def test_kept_stage_prefers_the_fine_stage_unless_it_validates_strictly_lower():
    from c2f.trainer.train import kept_stage

    on, off = TrainConfig(criterion="ndcg@20"), TrainConfig(criterion="ndcg@20", fine_fallback=False)
    coarse, lower, equal = {"ndcg@20": 0.30}, {"ndcg@20": 0.29}, {"ndcg@20": 0.30}
    assert kept_stage(coarse, lower, on) == "coarse"
    assert kept_stage(coarse, equal, on) == "fine"
    assert kept_stage(coarse, {"ndcg@20": 0.31}, on) == "fine"
    assert kept_stage(coarse, lower, off) == "fine"
    assert kept_stage(None, lower, on) == "fine"  # no validation split: nothing to compare


def test_a_fine_stage_that_validates_below_its_coarse_stage_publishes_the_coarse_stage(
    legcf, synthetic_lightgcn_dir, tmp_path, monkeypatch
):
    """fine_fallback (default on): the fine stage's kept validation is forced below the coarse stage's, so the run
    publishes its coarse stage as a legcf artifact, says why, and its test figures are the coarse stage's."""
    from c2f.trainer.fit import Trainer

    kept_valid = Trainer.kept_valid

    def worse_fine(self, stage):
        figures = kept_valid(self, stage)
        return {k: v - 1.0 for k, v in figures.items()} if stage == "fine" and figures else figures

    monkeypatch.setattr(Trainer, "kept_valid", worse_fine)
    from c2f.trainer.models import Fine

    released: list[int] = []  # the discarded fine stage's operators are dropped before the coarse P is rebuilt
    release = Fine.release_operator
    monkeypatch.setattr(Fine, "release_operator", lambda self: (released.append(self.P.numel()), release(self)))
    model = _from(legcf, synthetic_lightgcn_dir, tmp_path, method="c2f", epochs=3)
    assert len(released) == 1 and released[0] > 0
    m = model.manifest.model_dump()
    assert m["method"] == "legcf" and model.version.endswith("-legcf")
    kept = m["info"]["stage_kept"]
    assert kept["stage"] == "coarse" and kept["fine_valid"]["ndcg@20"] < kept["coarse_valid"]["ndcg@20"]
    assert m["metrics"]["trained"]["valid"] == kept["coarse_valid"]
    assert "S_r_w" not in load_artifact(model.path).arrays
    # the published coarse stage is the legcf run it started from (read back from float16 storage): its figures
    assert m["metrics"]["trained"]["test"]["recall@20"] == pytest.approx(
        legcf.manifest.metrics.trained.test["recall@20"], abs=2e-3
    )

    monkeypatch.undo()
    kept_fine = _from(legcf, synthetic_lightgcn_dir, tmp_path, method="c2f", epochs=3, fine_fallback=False)
    assert kept_fine.manifest.method == "c2f" and kept_fine.manifest.info["stage_kept"]["stage"] == "fine"
