"""Train one method on loaded data: UD, LEGCF (coarse stage, Algorithm 1), C2F (coarse then fine, Algorithm 2), or
the equal-memory baselines hash and qr (one phase, as UD)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from c2f.contract.budget import Plan, size_for_budget
from c2f.contract.config import TrainConfig
from c2f.contract.methods import COARSE_METHODS, auto_hash_buckets, auto_qr_buckets
from c2f.trainer.assignment import (
    bridging_assignment,
    fine_assignment_init,
    metis_assignment,
    metis_parts,
    pinv_assignment,
    similarity_assignment,
)
from c2f.trainer.data import InteractionData
from c2f.trainer.distributed import Distributed, from_environment
from c2f.trainer.fine import init_fine_codebook, lambda_for_sparsity, nonzero_fraction, select_coarse_rows
from c2f.trainer.fit import Progress, Trainer
from c2f.trainer.models import UD, Coarse, EmbeddingModel, Fine, Hashed, QuotientRemainder

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


def train(data: InteractionData, config: TrainConfig, progress: Progress | None = None) -> TrainedModel:
    """Train ``config.method`` on ``data``; every phase early-stops on validation ``config.criterion``.

    Under ``torchrun`` every rank calls this; see :mod:`trainer.distributed` for how the work is divided.
    """
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
    timings: dict[str, float] = {}
    info: dict[str, Any] = {"device": str(device), "world_size": distributed.world_size if distributed else 1}

    def finish(
        model: EmbeddingModel,
        coarse: Coarse | None,
        valid: dict[str, float] | None,
        coarse_test: dict | None,
        published: TrainConfig = config,
    ) -> TrainedModel:
        _check_ranks_agree(trainer, model)
        info["phases"] = trainer.phase_dicts()
        test = trainer.test_metrics(model, "test (trained)")
        return TrainedModel(
            config=published,
            model=model,
            coarse=coarse,
            history=trainer.history_dicts(),
            timings=timings,
            valid=valid,
            test=test,
            coarse_test=coarse_test,
            info=info,
            distributed=distributed,
            budget=budget,
            test_users=trainer.test_users,
            evaluation=trainer.evaluation_samples(),
        )

    if config.method in SINGLE_PHASE:
        stage = config.method
        t0 = time.perf_counter()
        single = single_phase_model(data, config, device)
        if config.biases:
            single.enable_item_bias()
        trainer.run_phase(
            single, stage=stage, phase=1, lr=config.lr, max_epochs=config.epochs, patience=config.patience_for("coarse")
        )
        timings[f"{stage}_seconds"] = time.perf_counter() - t0
        _record_update_seconds(trainer, stage, timings)
        return finish(single, None, trainer.kept_valid(stage), None)

    if config.coarse_from:
        coarse = load_coarse(data, config, device)
    else:
        coarse = train_coarse(data, config, trainer, device, timings)
    _check_ranks_agree(trainer, coarse)
    if config.method == "legcf":
        if config.continuation != "none":
            continue_coarse(config, trainer, coarse, timings)
        # no separate coarse_test: the trained model is the coarse stage (one test evaluation, not two)
        return finish(coarse, coarse, trainer.kept_valid("coarse"), None)
    coarse_test = trainer.test_metrics(coarse, "test (coarse)")
    coarse_valid = trainer.validate(coarse)
    coarse.release_operator()  # the fine stage reads only E_c and S^c; a coarse fallback rebuilds P
    fine = train_fine(data, config, trainer, coarse, device, timings, info)
    stage = kept_stage(coarse_valid, trainer.kept_valid("fine"), config)
    info["stage_kept"] = {
        "stage": stage,
        "criterion": config.criterion,
        "coarse_valid": coarse_valid,
        "fine_valid": trainer.kept_valid("fine"),
    }
    if stage == "coarse":
        # the published model is the coarse stage: a legcf artifact (its manifest says why in info["stage_kept"])
        log.warning("fine stage validates below its coarse stage (%s): publishing the coarse stage", info["stage_kept"])
        # the fine operators (H_const and P: 1.2 GB at a million users) go before the test and export rebuild the
        # coarse P: holding both was the peak of benchmarks/scale.py's 1M-user c2f run
        fine.release_operator()
        return finish(coarse, coarse, coarse_valid, coarse_test, dataclasses.replace(config, method="legcf"))
    # the forward trained ("auto" resolved): the service's exact mode reconstructs the fine stage from it
    published = dataclasses.replace(config, fine_forward="paper" if fine.forward_kind == "paper" else "released")
    return finish(fine, coarse, trainer.kept_valid("fine"), coarse_test, published)


def kept_stage(
    coarse_valid: dict[str, float] | None, fine_valid: dict[str, float] | None, config: TrainConfig
) -> Literal["coarse", "fine"]:
    """Which stage a c2f run publishes: "fine" unless ``config.fine_fallback`` is on and the fine stage's kept state
    validates strictly below its coarse stage on ``config.criterion`` (no validation split: "fine")."""
    if not config.fine_fallback or coarse_valid is None or fine_valid is None:
        return "fine"
    return "coarse" if fine_valid[config.criterion] < coarse_valid[config.criterion] else "fine"


SINGLE_PHASE = ("ud", "hash", "qr")
"""Methods trained in one phase of plain BPR (no assignments): a full table or the equal-memory baselines."""


def single_phase_model(data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
    """The UD, Hashed or QuotientRemainder model of ``config`` on the training graph."""
    n_entities = data.n_users + data.n_items
    if config.method == "hash":
        buckets = auto_hash_buckets(config.hash_buckets, n_entities)
        rows = config.batch_size * (2 + config.negatives)  # users, positives, negatives of one batch
        return Hashed(data.train, buckets, config.dim, config.layers, device, seed=config.seed, batch_rows=rows)
    if config.method == "qr":
        m = auto_qr_buckets(config.qr_buckets, n_entities)
        return QuotientRemainder(
            data.train, m, config.dim, config.layers, device, combine=config.qr_combine, seed=config.seed
        )
    return UD(data.train, config.dim, config.layers, device, seed=config.seed, init_std=config.init_std)


def _check_ranks_agree(trainer: Trainer, model: EmbeddingModel) -> None:
    """Under torchrun: fail loudly unless every rank ends a stage with exactly rank 0's model."""
    if trainer.dist is not None:
        trainer.dist.check_same(model.snapshot())


def load_coarse(data: InteractionData, config: TrainConfig, device: torch.device) -> Coarse:
    """The coarse stage of a published version (``config.coarse_from``), checked against this dataset: where c2f's
    fine stage (or legcf's continuation phase) starts from instead of training the two coarse phases."""
    from c2f.contract.artifact import load_artifact

    artifact = load_artifact(str(config.coarse_from))
    if artifact.method not in COARSE_METHODS:
        raise ValueError(f"coarse_from must be a {' or '.join(COARSE_METHODS)} version, got a {artifact.method} one")
    if artifact.manifest.dataset.content_hash != data.content_hash:
        raise ValueError("coarse_from was trained on different data (dataset content hash differs)")
    a = artifact.arrays
    E_c = a["E_c"]
    if E_c.shape != (config.m_c, config.dim) or a["S_c_idx"].shape[1] != config.t_c:
        raise ValueError(
            f"coarse_from has m_c×d = {E_c.shape} and t_c = {a['S_c_idx'].shape[1]}; "
            f"the config asks for {(config.m_c, config.dim)} and t_c = {config.t_c}"
        )
    coarse = Coarse(data.train, a["S_c_idx"], a["S_c_w"], config.m_c, config.dim, config.layers, device)
    with torch.no_grad():
        coarse.E_c.copy_(torch.from_numpy(np.array(E_c, np.float32)))  # a float16-stored codebook too
    if config.biases:
        stored = a.get("item_bias")
        coarse.enable_item_bias(None if stored is None else torch.from_numpy(np.array(stored, np.float32)))
    return coarse


def train_coarse(
    data: InteractionData,
    config: TrainConfig,
    trainer: Trainer,
    device: torch.device,
    timings: dict[str, float],
) -> Coarse:
    """Algorithm 1: METIS init, phase 1 with S^c fixed, phase 2 with Eq. 11 updates every f_c epochs."""
    t0 = time.perf_counter()
    parts = metis_parts(data.train, config.m_c, seed=config.seed)
    S_c_idx, S_c_w = trainer.agree(*metis_assignment(parts, config.m_c, config.t_c, config.w_star, seed=config.seed))
    coarse = Coarse(data.train, S_c_idx, S_c_w, config.m_c, config.dim, config.layers, device, seed=config.seed)
    if config.biases:
        coarse.enable_item_bias()
    timings["coarse_init_seconds"] = time.perf_counter() - t0

    def update() -> None:
        # H_full (N, d) is gone before set_assignment builds the new P (no local keeps it alive)
        S = pinv_assignment(
            coarse.full_embeddings(), coarse.meta_embeddings(), config.t_c, normalise=not config.raw_assignment
        )
        coarse.set_assignment(*trainer.agree(*S))

    two_phases(trainer, coarse, "coarse", config, update, config.f_c, None, timings)
    return coarse


def continue_coarse(config: TrainConfig, trainer: Trainer, coarse: Coarse, timings: dict[str, float]) -> None:
    """Control phase for the fine stage: one more coarse phase with the fine stage's lr, batch and patience, S^c
    fixed, training E^c and the item biases ("coarse") or only the item biases ("biases"). What it gains over
    LEGCF is what more training alone gains, to be set against what the fine level gains."""
    if config.continuation == "biases":
        if coarse.item_bias is None:
            raise ValueError("continuation='biases' needs biases=True")
        coarse.E_c.requires_grad_(False)
    started = time.perf_counter()
    trainer.run_phase(
        coarse,
        stage="coarse",
        phase=3,
        lr=config.lr_fine,
        max_epochs=config.epochs,
        patience=config.patience_for("fine"),
        batch_size=config.batch_size_fine,
    )
    coarse.E_c.requires_grad_(True)
    timings["coarse_phase3_seconds"] = time.perf_counter() - started


def train_fine(
    data: InteractionData,
    config: TrainConfig,
    trainer: Trainer,
    coarse: Coarse,
    device: torch.device,
    timings: dict[str, float],
    info: dict[str, Any],
) -> Fine:
    """Algorithm 2: E^r from selected coarse rows via SparsePCA, S^r from METIS bridged through S^c, then
    phase 1 with S^r fixed and phase 2 with bridging updates (Eq. 23-24) every f_r epochs. E^c, S^c frozen."""
    t0 = time.perf_counter()
    E_c = coarse.E_c.detach().cpu().numpy()
    rows = select_coarse_rows(coarse.S_c_idx, coarse.S_c_w, config.m_c, config.m_r, config.fine_rows, config.seed)
    E_r = init_fine_codebook(E_c, rows, config.d_r, config.ablation, config.seed, config.fine_init)
    rows, E_r = trainer.agree(rows, E_r)
    if config.ablation == "C":
        soft_lambda = 0.0
    elif config.soft_lambda is not None:
        soft_lambda = float(config.soft_lambda)
    else:
        soft_lambda = lambda_for_sparsity(E_r, config.target_nonzero)
    if config.ablation == "D":
        S_r_idx, S_r_w = similarity_assignment(
            torch.from_numpy(E_c), torch.from_numpy(E_r), config.t_r, weights=config.fine_sr
        )
    else:
        fine_parts = metis_parts(data.train, config.m_r, seed=config.seed + 1)
        S_r_idx, S_r_w = fine_assignment_init(
            coarse.S_c_idx,
            coarse.S_c_w,
            config.m_c,
            fine_parts,
            config.m_r,
            config.t_r,
            config.w_star,
            weights=config.fine_sr,
        )
    S_r_idx, S_r_w = trainer.agree(S_r_idx, S_r_w)
    fine = Fine(
        data.train,
        coarse,
        E_r,
        S_r_idx,
        S_r_w,
        config.w_cr,
        soft_lambda,
        config.layers,
        device,
        forward="released" if config.fine_forward == "auto" else config.fine_forward,
    )
    t1 = time.perf_counter()
    start_valid = choose_forward(trainer, fine, config, info) if config.fine_forward == "auto" else None
    timings["fine_forward_choice_seconds"] = time.perf_counter() - t1  # in fine_init_seconds too
    timings["fine_init_seconds"] = time.perf_counter() - t0
    info["soft_lambda"] = soft_lambda
    info["fine_rows"] = rows.tolist()
    info["fine_nonzero_init"] = nonzero_fraction(fine.thresholded().detach().cpu().numpy())

    def next_assignment() -> tuple[np.ndarray, np.ndarray]:
        H = fine.all_nodes()
        n, m_c = fine.n_entities, fine.m_c
        if config.ablation == "D":
            return similarity_assignment(H[n : n + m_c], H[n + m_c :], config.t_r, weights=config.fine_sr)
        return bridging_assignment(H[:n], H[n : n + m_c], H[n + m_c :], config.t_r, weights=config.fine_sr)

    def update() -> None:
        fine.set_assignment(*trainer.agree(*next_assignment()))  # H (N + m, d) is freed before the rebuild

    # λ given: fixed (Eq. 16 as written). λ not given: chosen for target_nonzero at init, then either kept
    # (lambda_schedule "fixed", as the released code's fixed λ) or re-chosen after every epoch so that S_λ(E^r)
    # stays at target_nonzero (§4.4: about half non-zero is best), whatever scale E^r drifts to.
    fixed = config.soft_lambda is not None or config.ablation == "C" or config.lambda_schedule == "fixed"
    calibrate = None if fixed else config.target_nonzero

    def after_epoch() -> None:
        if calibrate is not None:
            fine.calibrate_lambda(calibrate)

    two_phases(trainer, fine, "fine", config, update, config.f_r, after_epoch, timings, start_valid)
    info["fine_nonzero_final"] = nonzero_fraction(fine.thresholded().detach().cpu().numpy())
    info["soft_lambda_final"] = fine.soft_lambda
    return fine


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
    _record_update_seconds(trainer, stage, timings)


def _record_update_seconds(trainer: Trainer, stage: str, timings: dict[str, float]) -> None:
    updates = [r.update_seconds for r in trainer.history if r.stage == stage and r.assignment_update]
    timings[f"{stage}_assignment_updates"] = float(len(updates))
    timings[f"{stage}_seconds_per_update"] = float(np.mean(updates)) if updates else 0.0
    epochs = [r.seconds for r in trainer.history if r.stage == stage]
    timings[f"{stage}_seconds_per_epoch"] = float(np.mean(epochs)) if epochs else 0.0
