"""The training loop's phase logic: early stopping restores the best state, the phase's starting state included."""

from __future__ import annotations

import numpy as np
import torch

from c2f.contract.config import TrainConfig
from c2f.trainer.assignment import metis_assignment, metis_parts
from c2f.trainer.data import InteractionData, load_dataset
from c2f.trainer.evaluate import evaluate, sample_users
from c2f.trainer.fit import CRITERION, Trainer
from c2f.trainer.models import Coarse
from c2f.trainer.train import train


def _trainer(data: InteractionData) -> Trainer:
    return Trainer(data, batch_size=1024, negatives=1, reg=1e-4, eval_every=1, patience=2, seed=0)


def _coarse(data: InteractionData) -> Coarse:
    parts = metis_parts(data.train, 8, seed=0)
    idx, w = metis_assignment(parts, 8, 2, 0.7, seed=0)
    return Coarse(data.train, idx, w, 8, 16, 2, torch.device("cpu"), seed=0)


def test_a_phase_whose_updates_only_hurt_ends_where_it_started(synthetic_lightgcn_dir):
    data = load_dataset(str(synthetic_lightgcn_dir))
    trainer, model = _trainer(data), _coarse(data)
    trainer.run_phase(model, stage="coarse", phase=1, lr=1e-2, max_epochs=15)
    entering = trainer.validate(model)
    state = model.snapshot()
    rng = np.random.default_rng(1)

    def scramble() -> None:  # an "assignment update" that destroys the model
        model.set_assignment(rng.integers(0, 8, model.S_c_idx.shape), model.S_c_w)

    result = trainer.run_phase(model, stage="coarse", phase=2, lr=1e-2, max_epochs=6, update=scramble)
    assert any(r.valid[CRITERION] < entering[CRITERION] for r in trainer.history if r.phase == 2)
    assert trainer.validate(model) == entering
    np.testing.assert_array_equal(model.S_c_idx, state["S_c_idx"])
    assert result.best_epoch == 0  # no phase-2 epoch beat the state phase 2 started from


def test_a_phase_keeps_its_best_epoch(synthetic_lightgcn_dir):
    data = load_dataset(str(synthetic_lightgcn_dir))
    trainer, model = _trainer(data), _coarse(data)
    result = trainer.run_phase(model, stage="coarse", phase=1, lr=1e-2, max_epochs=12)
    scores = {r.epoch: r.valid[CRITERION] for r in trainer.history}
    assert result.best_epoch == max(scores, key=lambda e: scores[e])
    assert trainer.validate(model)[CRITERION] == scores[result.best_epoch]


def test_with_eval_every_epochs_between_evaluations_never_replace_the_best_state(synthetic_lightgcn_dir):
    """Bug (a): an epoch that is not evaluated used to overwrite the best state, so a phase could end in a state
    worse than its best evaluated one (and unevaluated)."""
    data = load_dataset(str(synthetic_lightgcn_dir))
    trainer = Trainer(data, batch_size=1024, negatives=1, reg=1e-4, eval_every=2, patience=1, seed=0)
    model = _coarse(data)
    rng = np.random.default_rng(1)
    epochs_done = [0]

    def scramble_after_epoch_two() -> None:  # epochs 3 and 4 destroy the model; epoch 3 is not evaluated
        epochs_done[0] += 1
        if epochs_done[0] >= 3:
            model.set_assignment(rng.integers(0, 8, model.S_c_idx.shape), model.S_c_w)

    result = trainer.run_phase(
        model, stage="coarse", phase=1, lr=1e-2, max_epochs=8, after_epoch=scramble_after_epoch_two
    )
    evaluated = {r.epoch: r.valid for r in trainer.history if r.valid is not None}
    assert sorted(evaluated) == [2, 4]
    assert evaluated[4][CRITERION] < evaluated[2][CRITERION]
    assert result.best_epoch == 2
    assert trainer.validate(model) == evaluated[2] == result.best_valid


def test_a_phase_without_validation_data_keeps_its_last_epoch(synthetic_lightgcn_dir):
    data = load_dataset(str(synthetic_lightgcn_dir), valid_fraction=0.0)
    trainer = Trainer(data, batch_size=1024, negatives=1, reg=1e-4, eval_every=3, patience=1, seed=0)
    result = trainer.run_phase(_coarse(data), stage="coarse", phase=1, lr=1e-2, max_epochs=4)
    assert result.best_valid is None and result.best_epoch == 4 and result.epochs == 4


def test_reported_validation_is_the_kept_state_s_when_no_fine_epoch_beats_the_start(synthetic_lightgcn_dir):
    """Bug (b): when a phase keeps its starting state, the validation figures reported for the model must be that
    state's (evaluated before the phase's first epoch), not those of a discarded epoch. A fine stage with an
    absurd learning rate never beats its starting state."""
    data = load_dataset(str(synthetic_lightgcn_dir))
    config = TrainConfig(
        method="c2f",
        dim=16,
        m_c=8,
        m_r=4,
        t_r=2,
        d_r=8,
        batch_size=1024,
        epochs=6,
        patience=2,
        lr_fine=50.0,
        seed=3,
        biases=False,  # the check below scores h_u·h_i
        fine_fallback=False,  # the fine stage is what is checked, even where it validates below its coarse stage
    )
    trained = train(data, config)
    H = trained.model.full_embeddings()
    sample = sample_users(data.valid, config.valid_users, config.seed, stream=1)
    assert trained.valid == evaluate(H[: data.n_users], H[data.n_users :], data.valid, [data.train], users=sample)
    fine_phases = [p for p in trained.info["phases"] if p["stage"] == "fine"]
    assert all(p["best_epoch"] == 0 and p["improved_epochs"] == 0 for p in fine_phases)


def test_a_time_limit_ends_the_phase_evaluates_its_last_state_and_skips_later_phases(synthetic_lightgcn_dir):
    data = load_dataset(str(synthetic_lightgcn_dir))
    trainer = Trainer(data, batch_size=1024, negatives=1, reg=1e-4, eval_every=5, patience=50, seed=0)
    model = _coarse(data)
    calls = [0]

    def slow_epoch() -> None:  # the run's clock passes the limit during the third epoch
        calls[0] += 1
        if calls[0] == 3:
            trainer.time_limit = trainer_seconds() - 1.0

    def trainer_seconds() -> float:
        import time

        return time.perf_counter() - trainer.started - trainer.monitor_seconds

    result = trainer.run_phase(model, stage="coarse", phase=1, lr=1e-2, max_epochs=40, after_epoch=slow_epoch)
    assert result.epochs == 3
    last = trainer.history[-1]
    assert last.epoch == 3 and last.valid is not None  # not an evaluation epoch (every 5), evaluated anyway
    later = trainer.run_phase(model, stage="coarse", phase=2, lr=1e-2, max_epochs=40)
    assert later.epochs == 0 and later.best_epoch == 0


def test_linear_lr_schedule_decays_to_zero_over_the_phase_or_the_time_limit(synthetic_lightgcn_dir, monkeypatch):
    data = load_dataset(str(synthetic_lightgcn_dir))
    seen: list[float] = []

    def record_lr(self, model, optimizer, batch_size=None):  # type: ignore[no-untyped-def]
        seen.append(optimizer.param_groups[0]["lr"])
        return 0.5

    monkeypatch.setattr(Trainer, "train_epoch", record_lr)
    constant = Trainer(data, batch_size=1024, negatives=1, reg=1e-4, eval_every=1, patience=99, seed=0)
    constant.run_phase(_coarse(data), stage="coarse", phase=1, lr=0.02, max_epochs=4)
    assert seen == [0.02] * 4
    seen.clear()
    linear = Trainer(
        data, batch_size=1024, negatives=1, reg=1e-4, eval_every=1, patience=99, seed=0, lr_schedule="linear"
    )
    linear.run_phase(_coarse(data), stage="coarse", phase=1, lr=0.02, max_epochs=4)
    assert seen == [0.02, 0.015, 0.01, 0.005]
    # with a time limit, the fraction of it spent: a clock that has spent half of it halves the lr
    timed = Trainer(
        data,
        batch_size=1024,
        negatives=1,
        reg=1e-4,
        eval_every=1,
        patience=99,
        seed=0,
        lr_schedule="linear",
        time_limit=100.0,
    )
    timed.started -= 50.0
    assert 0.49 < timed.lr_factor(0, 4) <= 0.5
    timed.started -= 60.0
    assert timed.lr_factor(0, 4) == 0.0


def test_lr_schedule_is_checked_and_reaches_the_trainer(synthetic_lightgcn_dir, monkeypatch):
    import pytest

    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")  # type: ignore[arg-type]
    data = load_dataset(str(synthetic_lightgcn_dir))
    schedules: list[str] = []
    original = Trainer.lr_factor

    def spy(self, epoch_index, max_epochs):  # type: ignore[no-untyped-def]
        schedules.append(self.lr_schedule)
        return original(self, epoch_index, max_epochs)

    monkeypatch.setattr(Trainer, "lr_factor", spy)
    train(data, TrainConfig(method="ud", dim=8, epochs=2, lr_schedule="linear", device="cpu"))
    assert schedules == ["linear", "linear"]


def test_sampling_reaches_the_sampler(synthetic_lightgcn_dir, monkeypatch):
    import c2f.trainer.fit as fit_module
    from c2f.trainer.sampling import BPRSampler

    data = load_dataset(str(synthetic_lightgcn_dir))
    made: list[str] = []

    class Spy(BPRSampler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            made.append(self.by)

    monkeypatch.setattr(fit_module, "BPRSampler", Spy)
    train(data, TrainConfig(method="ud", dim=8, epochs=1, sampling="users", device="cpu"))
    train(data, TrainConfig(method="ud", dim=8, epochs=1, device="cpu"))
    assert made == ["users", "interactions"]
