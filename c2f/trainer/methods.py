"""One trainer per method, in a registry keyed by the name of the method's :class:`c2f.contract.methods.MethodSpec`:
the one place in the trainer that says how the methods differ.

A :class:`MethodTrainer` owns how its method is trained (:meth:`MethodTrainer.train`, on the shared machinery of
:mod:`c2f.trainer.train`) and what its trained model becomes among its spec's arrays (:meth:`MethodTrainer.arrays`;
:mod:`c2f.trainer.export` adds the arrays every method stores, the stored types, product-quantized codes and the
manifest). Adding a method: its spec in ``c2f/contract/methods.py``, its model class in ``c2f/trainer/models.py``
and its trainer here, decorated with :func:`register`; ``tests/trainer/test_methods.py`` checks the two registries
name the same methods.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import store_float
from c2f.contract.methods import COARSE_METHODS, auto_hash_buckets, auto_qr_buckets, get_spec
from c2f.trainer.assignment import (
    bridging_assignment,
    fine_assignment_init,
    metis_assignment,
    metis_parts,
    pinv_assignment,
    similarity_assignment,
)
from c2f.trainer.data import InteractionData
from c2f.trainer.export import refit_weights, served_assignment
from c2f.trainer.fine import init_fine_codebook, lambda_for_sparsity, nonzero_fraction, select_coarse_rows
from c2f.trainer.models import UD, Coarse, EmbeddingModel, Fine, Hashed, QuotientRemainder
from c2f.trainer.train import (
    Run,
    TrainedModel,
    check_ranks_agree,
    choose_forward,
    kept_stage,
    record_update_seconds,
    two_phases,
)

log = logging.getLogger(__name__)


class MethodTrainer:
    """How the trainer trains one method and turns the trained model into the method's own arrays."""

    name: ClassVar[str]  # the name of the method's MethodSpec

    def train(self, run: Run) -> TrainedModel:
        """Train the method in ``run`` and finish it (:meth:`c2f.trainer.train.Run.finish`)."""
        raise NotImplementedError

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """The spec's own arrays (float32 and int indices; export stores them in their stored types), in the
        order they are stored, from the trained model and its propagated entity rows H_full (N, d) float32."""
        raise NotImplementedError

    def soft_lambda(self, trained: TrainedModel) -> float | None:
        """The manifest's ``soft_lambda`` (the fine stage's λ; None without one)."""
        return None

    def coarse_test(self, trained: TrainedModel) -> dict[str, float] | None:
        """The manifest's ``metrics.trained.coarse_test`` (the coarse stage alone under a fine one; None without)."""
        return None


TRAINERS: dict[str, MethodTrainer] = {}


def register(cls: type[MethodTrainer]) -> type[MethodTrainer]:
    """Class decorator: add one instance of ``cls`` to :data:`TRAINERS` under ``cls.name``, a registered spec's."""
    get_spec(cls.name)  # MethodError for a name the contract does not know
    if cls.name in TRAINERS:
        raise ValueError(f"method {cls.name!r} has two trainers")
    TRAINERS[cls.name] = cls()
    return cls


def get_trainer(method: str) -> MethodTrainer:
    """The trainer of ``method``; MethodError naming the known methods for a name with no spec."""
    return TRAINERS[get_spec(method).name]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A parameter as a float32 array (a copy, detached, on the CPU)."""
    return tensor.detach().cpu().numpy().astype(np.float32)


class SinglePhaseTrainer(MethodTrainer):
    """Methods trained in one phase of plain BPR, no assignments: a full table or an equal-memory baseline."""

    def build(self, data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
        """The untrained model of ``config`` on the training graph."""
        raise NotImplementedError

    def train(self, run: Run) -> TrainedModel:
        config, trainer, stage = run.config, run.trainer, self.name
        t0 = time.perf_counter()
        model = self.build(run.data, config, run.device)
        if config.biases:
            model.enable_item_bias()
        trainer.run_phase(
            model, stage=stage, phase=1, lr=config.lr, max_epochs=config.epochs, patience=config.patience_for("coarse")
        )
        run.timings[f"{stage}_seconds"] = time.perf_counter() - t0
        record_update_seconds(trainer, stage, run.timings)
        return run.finish(model, None, trainer.kept_valid(stage), None)


def single_phase_model(data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
    """The untrained model of a one-phase method (ud, hash, qr) of ``config`` on the training graph."""
    method = get_trainer(config.method)
    if not isinstance(method, SinglePhaseTrainer):
        raise ValueError(f"{config.method} is not trained in one phase")
    return method.build(data, config, device)


@register
class UDTrainer(SinglePhaseTrainer):
    """``ud``: LightGCN on a full (N, d) table."""

    name = "ud"

    def build(self, data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
        return UD(data.train, config.dim, config.layers, device, seed=config.seed, init_std=config.init_std)

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """H_full (N, d) as propagated and the layer-0 table E (N, d)."""
        assert isinstance(trained.model, UD)
        return {"H_full": H_full, "E": _numpy(trained.model.E)}


@register
class HashTrainer(SinglePhaseTrainer):
    """``hash``: the hashing trick, B shared rows."""

    name = "hash"

    def build(self, data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
        buckets = auto_hash_buckets(config.hash_buckets, data.n_users + data.n_items)
        rows = config.batch_size * (2 + config.negatives)  # users, positives, negatives of one batch
        return Hashed(data.train, buckets, config.dim, config.layers, device, seed=config.seed, batch_rows=rows)

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """hash_table (B, d)."""
        assert isinstance(trained.model, Hashed)
        return {"hash_table": _numpy(trained.model.table)}


@register
class QRTrainer(SinglePhaseTrainer):
    """``qr``: the quotient-remainder trick, Q (ceil(N/m), d) and R (m, d)."""

    name = "qr"

    def build(self, data: InteractionData, config: TrainConfig, device: torch.device) -> EmbeddingModel:
        m = auto_qr_buckets(config.qr_buckets, data.n_users + data.n_items)
        return QuotientRemainder(
            data.train, m, config.dim, config.layers, device, combine=config.qr_combine, seed=config.seed
        )

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """qr_Q (ceil(N/m), d) and qr_R (m, d)."""
        assert isinstance(trained.model, QuotientRemainder)
        return {"qr_Q": _numpy(trained.model.Q), "qr_R": _numpy(trained.model.R)}


@register
class LegcfTrainer(MethodTrainer):
    """``legcf``: the coarse stage (Algorithm 1), trained or loaded from a published version, and an optional
    continuation phase; exported with the served form refit to the propagated rows."""

    name = "legcf"

    def train(self, run: Run) -> TrainedModel:
        coarse = self.coarse_stage(run)
        if run.config.continuation != "none":
            self.continue_coarse(run, coarse)
        # no separate coarse_test: the trained model is the coarse stage (one test evaluation, not two)
        return run.finish(coarse, coarse, run.trainer.kept_valid("coarse"), None)

    def coarse_stage(self, run: Run) -> Coarse:
        """The coarse stage: loaded (``config.coarse_from``) or trained, the same on every rank."""
        coarse = self.load_coarse(run) if run.config.coarse_from else self.train_coarse(run)
        check_ranks_agree(run.trainer, coarse)
        return coarse

    def load_coarse(self, run: Run) -> Coarse:
        """The coarse stage of a published version (``config.coarse_from``), checked against this dataset: where
        c2f's fine stage (or legcf's continuation phase) starts from instead of training the two coarse phases."""
        from c2f.contract.artifact import load_artifact

        data, config = run.data, run.config
        artifact = load_artifact(str(config.coarse_from))
        if artifact.method not in COARSE_METHODS:
            raise ValueError(
                f"coarse_from must be a {' or '.join(COARSE_METHODS)} version, got a {artifact.method} one"
            )
        if artifact.manifest.dataset.content_hash != data.content_hash:
            raise ValueError("coarse_from was trained on different data (dataset content hash differs)")
        a = artifact.arrays
        E_c = a["E_c"]
        if E_c.shape != (config.m_c, config.dim) or a["S_c_idx"].shape[1] != config.t_c:
            raise ValueError(
                f"coarse_from has m_c×d = {E_c.shape} and t_c = {a['S_c_idx'].shape[1]}; "
                f"the config asks for {(config.m_c, config.dim)} and t_c = {config.t_c}"
            )
        coarse = Coarse(data.train, a["S_c_idx"], a["S_c_w"], config.m_c, config.dim, config.layers, run.device)
        with torch.no_grad():
            coarse.E_c.copy_(torch.from_numpy(np.array(E_c, np.float32)))  # a float16-stored codebook too
        if config.biases:
            stored = a.get("item_bias")
            coarse.enable_item_bias(None if stored is None else torch.from_numpy(np.array(stored, np.float32)))
        return coarse

    def train_coarse(self, run: Run) -> Coarse:
        """Algorithm 1: METIS init, phase 1 with S^c fixed, phase 2 with Eq. 11 updates every f_c epochs."""
        config, trainer = run.config, run.trainer
        t0 = time.perf_counter()
        graph = run.data.train
        parts = metis_parts(graph, config.m_c, seed=config.seed)
        initial = metis_assignment(parts, config.m_c, config.t_c, config.w_star, seed=config.seed)
        S_c_idx, S_c_w = trainer.agree(*initial)
        coarse = Coarse(graph, S_c_idx, S_c_w, config.m_c, config.dim, config.layers, run.device, seed=config.seed)
        if config.biases:
            coarse.enable_item_bias()
        run.timings["coarse_init_seconds"] = time.perf_counter() - t0

        def update() -> None:
            # H_full (N, d) is gone before set_assignment builds the new P (no local keeps it alive)
            S = pinv_assignment(
                coarse.full_embeddings(), coarse.meta_embeddings(), config.t_c, normalise=not config.raw_assignment
            )
            coarse.set_assignment(*trainer.agree(*S))

        two_phases(trainer, coarse, "coarse", config, update, config.f_c, None, run.timings)
        return coarse

    def continue_coarse(self, run: Run, coarse: Coarse) -> None:
        """Control phase for the fine stage: one more coarse phase with the fine stage's lr, batch and patience,
        S^c fixed, training E^c and the item biases ("coarse") or only the item biases ("biases"). What it gains
        over LEGCF is what more training alone gains, to be set against what the fine level gains."""
        config = run.config
        if config.continuation == "biases":
            if coarse.item_bias is None:
                raise ValueError("continuation='biases' needs biases=True")
            coarse.E_c.requires_grad_(False)
        started = time.perf_counter()
        run.trainer.run_phase(
            coarse,
            stage="coarse",
            phase=3,
            lr=config.lr_fine,
            max_epochs=config.epochs,
            patience=config.patience_for("fine"),
            batch_size=config.batch_size_fine,
        )
        coarse.E_c.requires_grad_(True)
        run.timings["coarse_phase3_seconds"] = time.perf_counter() - started

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """The coarse stage's arrays, served from its propagated codebook rows H_meta (m_c, d)."""
        assert isinstance(trained.model, Coarse)
        return self.coarse_arrays(trained, H_full, trained.model.meta_embeddings().cpu().numpy())

    @staticmethod
    def coarse_arrays(trained: TrainedModel, H_full: np.ndarray, H_meta: np.ndarray) -> dict[str, np.ndarray]:
        """S^c (N, t_c), its served form (N, t_s) over the served codebook H_meta (m_c, d) fitted so that
        S·H_meta ≈ H_full (:func:`c2f.trainer.export.served_assignment`) and the layer-0 codebook E_c (m_c, d)."""
        coarse, config = trained.coarse, trained.config
        assert coarse is not None
        # from here on only H_full, H_meta and the assignments are read: the propagation operators (1.56 GB for
        # LEGCF at 1.3M entities) are not carried through the served fit and the served evaluations
        trained.model.release_operator()
        coarse.release_operator()
        S_idx_served, S_w_served, H_meta_served = served_assignment(
            coarse.S_c_idx, H_meta, H_full, config.served_fit, terms=config.terms_served
        )
        if config.store_dtype != "float32":
            # refit the weights to the codebook as it will be stored, so that they absorb its rounding
            H_meta_served = store_float(H_meta_served, config.store_dtype).astype(np.float32)
            S_w_served = refit_weights(S_idx_served, H_meta_served, H_full)
        return {
            "S_c_idx": coarse.S_c_idx.astype(np.int32),
            "S_c_w": coarse.S_c_w.astype(np.float32),
            "S_c_idx_served": S_idx_served,
            "S_c_w_served": S_w_served,
            "H_meta": H_meta_served.astype(np.float32),
            "E_c": _numpy(coarse.E_c),
        }


@register
class C2FTrainer(LegcfTrainer):
    """``c2f``: LEGCF's coarse stage, then the fine stage (Algorithm 2) on top of it; published as the coarse stage
    (a legcf artifact) when ``fine_fallback`` finds the fine stage validating below it."""

    name = "c2f"

    def train(self, run: Run) -> TrainedModel:
        config, trainer, info = run.config, run.trainer, run.info
        coarse = self.coarse_stage(run)
        coarse_test = trainer.test_metrics(coarse, "test (coarse)")
        coarse_valid = trainer.validate(coarse)
        coarse.release_operator()  # the fine stage reads only E_c and S^c; a coarse fallback rebuilds P
        fine = self.train_fine(run, coarse)
        stage = kept_stage(coarse_valid, trainer.kept_valid("fine"), config)
        info["stage_kept"] = {
            "stage": stage,
            "criterion": config.criterion,
            "coarse_valid": coarse_valid,
            "fine_valid": trainer.kept_valid("fine"),
        }
        if stage == "coarse":
            # the published model is the coarse stage: a legcf artifact (its manifest says why in info["stage_kept"])
            log.warning(
                "fine stage validates below its coarse stage (%s): publishing the coarse stage", info["stage_kept"]
            )
            # the fine operators (H_const and P: 1.2 GB at a million users) go before the test and export rebuild
            # the coarse P: holding both was the peak of benchmarks/scale.py's 1M-user c2f run
            fine.release_operator()
            return run.finish(coarse, coarse, coarse_valid, coarse_test, dataclasses.replace(config, method="legcf"))
        # the forward trained ("auto" resolved): the service's exact mode reconstructs the fine stage from it
        published = dataclasses.replace(config, fine_forward=fine.forward_kind)
        return run.finish(fine, coarse, trainer.kept_valid("fine"), coarse_test, published)

    def train_fine(self, run: Run, coarse: Coarse) -> Fine:
        """Algorithm 2: E^r from selected coarse rows via SparsePCA, S^r from METIS bridged through S^c, then
        phase 1 with S^r fixed and phase 2 with bridging updates (Eq. 23-24) every f_r epochs. E^c, S^c frozen."""
        config, trainer, timings, info = run.config, run.trainer, run.timings, run.info
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
            fine_parts = metis_parts(run.data.train, config.m_r, seed=config.seed + 1)
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
            run.data.train,
            coarse,
            E_r,
            S_r_idx,
            S_r_w,
            config.w_cr,
            soft_lambda,
            config.layers,
            run.device,
            forward="released" if config.fine_forward == "auto" else config.fine_forward,
            bias_start=config.fine_bias_start,
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
        # (lambda_schedule "fixed", as the released code's fixed λ) or re-chosen after every epoch so that
        # S_λ(E^r) stays at target_nonzero (§4.4: about half non-zero is best), whatever scale E^r drifts to.
        fixed = config.soft_lambda is not None or config.ablation == "C" or config.lambda_schedule == "fixed"
        calibrate = None if fixed else config.target_nonzero

        def after_epoch() -> None:
            if calibrate is not None:
                fine.calibrate_lambda(calibrate)

        two_phases(trainer, fine, "fine", config, update, config.f_r, after_epoch, timings, start_valid)
        info["fine_nonzero_final"] = nonzero_fraction(fine.thresholded().detach().cpu().numpy())
        info["soft_lambda_final"] = fine.soft_lambda
        return fine

    def arrays(self, trained: TrainedModel, H_full: np.ndarray) -> dict[str, np.ndarray]:
        """S^r (m_c, t_r) and S_λ(E^r) (m_r, d) as CSR, then the coarse stage's arrays served from the fine stage's
        propagated coarse rows H_meta (m_c, d)."""
        fine = trained.model
        assert isinstance(fine, Fine)
        n, m_c = fine.n_entities, fine.m_c
        H_meta = fine.all_nodes()[n : n + m_c].cpu().numpy().copy()  # a copy: a view would keep all N + m rows
        fine_csr = sp.csr_matrix(fine.thresholded().detach().cpu().numpy().astype(np.float32))
        return {
            "S_r_idx": fine.S_r_idx.astype(np.int32),
            "S_r_w": fine.S_r_w.astype(np.float32),
            "E_r_indptr": fine_csr.indptr.astype(np.int64),
            "E_r_indices": fine_csr.indices.astype(np.int32),
            "E_r_data": fine_csr.data.astype(np.float32),
            **self.coarse_arrays(trained, H_full, H_meta),
        }

    def soft_lambda(self, trained: TrainedModel) -> float | None:
        assert isinstance(trained.model, Fine)
        return float(trained.model.soft_lambda)

    def coarse_test(self, trained: TrainedModel) -> dict[str, float] | None:
        return trained.coarse_test
