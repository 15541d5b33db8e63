"""The training loop's phase logic: early stopping restores the best state, the phase's starting state included."""

from __future__ import annotations

import numpy as np
import torch

from trainer.assignment import metis_assignment, metis_parts
from trainer.data import InteractionData, load_dataset
from trainer.fit import CRITERION, Trainer
from trainer.models import Coarse


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
