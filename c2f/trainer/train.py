"""Training's shared machinery: the run every method trains in (:class:`Run`), the entry point :func:`train`, and
the pieces the methods share: Algorithms 1-2's two phases, the fine stage's choice of forward and kept stage.

What each method trains (UD, LEGCF's coarse stage, C2F's coarse then fine stage, the equal-memory baselines hash
and qr) lives with the method, in :mod:`c2f.trainer.methods`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from c2f.contract.budget import Plan, size_for_budget
from c2f.contract.config import TrainConfig
from c2f.trainer.data import InteractionData
from c2f.trainer.distributed import Distributed, from_environment
from c2f.trainer.fit import Progress, Trainer
from c2f.trainer.models import Coarse, EmbeddingModel, Fine

log = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """The outcome of training: the final model (Fine for c2f), its coarse stage, history and figures."""

    config: TrainConfig
    model: EmbeddingModel
    coarse: Coarse | None
    history: list[dict[str, Any]]
    timings: dict[str, float]
    valid: dict[str, float] | None
    test: dict[str, float]
    coarse_test: dict[str, float] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    distributed: Distributed | None = None  # this process's place in a torchrun launch, None otherwise
    budget: Plan | None = None  # the sizes a memory budget chose (config holds them already)
    # the users test figures are computed on (the same for trained and served metrics) and what the manifest
    # records about the validation and test samples
    test_users: np.ndarray | None = None
    evaluation: dict[str, dict[str, int]] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Run:
    """One training run's shared state: what every method's training reads (data, config, the fit loop, device) and
    writes (timings, info), and :meth:`finish`, which turns its final model into a :class:`TrainedModel`."""

    data: InteractionData
    config: TrainConfig
    trainer: Trainer
    device: torch.device
    distributed: Distributed | None
    budget: Plan | None
    timings: dict[str, float]
    info: dict[str, Any]

    def finish(
        self,
        model: EmbeddingModel,
        coarse: Coarse | None,
        valid: dict[str, float] | None,
        coarse_test: dict | None,
        published: TrainConfig | None = None,
    ) -> TrainedModel:
        """The outcome with ``model`` published under ``published`` (None: the run's config); tests ``model``."""
        trainer = self.trainer
        check_ranks_agree(trainer, model)
        self.info["phases"] = trainer.phase_dicts()
        test = trainer.test_metrics(model, "test (trained)")
        return TrainedModel(
            config=self.config if published is None else published,
            model=model,
            coarse=coarse,
            history=trainer.history_dicts(),
            timings=self.timings,
            valid=valid,
            test=test,
            coarse_test=coarse_test,
            info=self.info,
            distributed=self.distributed,
            budget=self.budget,
            test_users=trainer.test_users,
            evaluation=trainer.evaluation_samples(),
        )


def train(data: InteractionData, config: TrainConfig, progress: Progress | None = None) -> TrainedModel:
    """Train ``config.method`` on ``data`` (its :class:`c2f.trainer.methods.MethodTrainer`); every phase
    early-stops on validation ``config.criterion``.

    Under ``torchrun`` every rank calls this; see :mod:`trainer.distributed` for how the work is divided.
    """
    # methods.py builds on this module's machinery, so it is imported here rather than at the top
    from c2f.trainer.methods import get_trainer

    # a memory budget sets the method's size knob now that N is known (BudgetError when nothing fits)
    config, budget = size_for_budget(config, data.n_users, data.n_items)
    torch.manual_seed(config.seed)
    distributed = from_environment(config.device)
    device = distributed.device if distributed is not None else resolve_device(config.device)
    trainer = Trainer(
        data,
        batch_size=config.batch_size,
        negatives=config.negatives,
        reg=config.reg,
        eval_every=config.eval_every,
        patience=config.patience,
        seed=config.seed,
        progress=progress,
        dist=distributed,
        criterion=config.criterion,
        monitor_every=config.monitor_every,
        time_limit=config.time_limit,
        lr_schedule=config.lr_schedule,
        sampling=config.sampling,
        valid_sample=config.valid_users,
        test_sample=config.test_users,
    )
    info: dict[str, Any] = {"device": str(device), "world_size": distributed.world_size if distributed else 1}
    run = Run(data, config, trainer, device, distributed, budget, timings={}, info=info)
    return get_trainer(config.method).train(run)


def kept_stage(
    coarse_valid: dict[str, float] | None, fine_valid: dict[str, float] | None, config: TrainConfig
) -> Literal["coarse", "fine"]:
    """Which stage a c2f run publishes: "fine" unless ``config.fine_fallback`` is on and the fine stage's kept state
    validates strictly below its coarse stage on ``config.criterion`` (no validation split: "fine")."""
    if not config.fine_fallback or coarse_valid is None or fine_valid is None:
        return "fine"
    return "coarse" if fine_valid[config.criterion] < coarse_valid[config.criterion] else "fine"


def check_ranks_agree(trainer: Trainer, model: EmbeddingModel) -> None:
    """Under torchrun: fail loudly unless every rank ends a stage with exactly rank 0's model."""
    if trainer.dist is not None:
        trainer.dist.check_same(model.snapshot())


def choose_forward(trainer: Trainer, fine: Fine, config: TrainConfig, info: dict[str, Any]) -> dict | None:
    """``fine_forward="auto"``: validate the fine stage's starting state under the released forward (``fine`` is
    built with it) and under the paper's, keep the better on ``config.criterion`` (ties: released) and return its
    validation figures (None without validation data: released kept). Records both in ``info["fine_forward"]``.
    The operators of one forward at a time: both at once would hold two (N + m) × (d + m_r) sets."""
    released = trainer.validate(fine)
    if released is None:
        info["fine_forward"] = {"chosen": "released", "reason": "no validation data"}
        return None
    fine.set_forward("paper")
    paper = trainer.validate(fine)
    assert paper is not None
    chosen = "released" if released[config.criterion] >= paper[config.criterion] else "paper"
    if chosen == "released":
        fine.set_forward("released")
    info["fine_forward"] = {
        "chosen": chosen,
        "criterion": config.criterion,
        "start_valid": {"released": released[config.criterion], "paper": paper[config.criterion]},
    }
    log.info(
        "fine forward %s (starting %s: released %.4f, paper %.4f)",
        chosen,
        config.criterion,
        released[config.criterion],
        paper[config.criterion],
    )
    return released if chosen == "released" else paper


def two_phases(
    trainer: Trainer,
    model: EmbeddingModel,
    stage: str,
    config: TrainConfig,
    update: Callable[[], None],
    update_every: int,
    after_epoch: Callable[[], None] | None,
    timings: dict[str, float],
    start_valid: dict[str, float] | None = None,
) -> None:
    """Algorithms 1-2's two loops: the assignment fixed until early stop, then updated every ``update_every``.
    ``stage`` "coarse" or "fine" picks that stage's lr, batch size and patience from ``config``; ``start_valid``:
    the starting state's validation figures when already known (phase 1 does not evaluate it again)."""
    fine = stage == "fine"
    for phase, phase_update in ((1, None), (2, update)):
        started = time.perf_counter()
        trainer.run_phase(
            model,
            stage=stage,
            phase=phase,
            lr=config.lr_fine if fine else config.lr,
            max_epochs=config.epochs,
            update=phase_update,
            update_every=update_every,
            after_epoch=after_epoch,
            patience=config.patience_for(stage),
            batch_size=config.batch_size_fine if fine else None,
            start_valid=start_valid if phase == 1 else None,
        )
        timings[f"{stage}_phase{phase}_seconds"] = time.perf_counter() - started
    record_update_seconds(trainer, stage, timings)


def record_update_seconds(trainer: Trainer, stage: str, timings: dict[str, float]) -> None:
    """``timings``: ``stage``'s assignment updates, mean seconds per update and mean seconds per epoch."""
    updates = [r.update_seconds for r in trainer.history if r.stage == stage and r.assignment_update]
    timings[f"{stage}_assignment_updates"] = float(len(updates))
    timings[f"{stage}_seconds_per_update"] = float(np.mean(updates)) if updates else 0.0
    epochs = [r.seconds for r in trainer.history if r.stage == stage]
    timings[f"{stage}_seconds_per_epoch"] = float(np.mean(epochs)) if epochs else 0.0
