"""The training loop: BPR epochs, validation, early stopping, and the two phases of Algorithms 1 and 2.

Phase 1 trains with a fixed assignment until validation NDCG@20 stops improving; phase 2 additionally updates
the assignment every ``update_every`` epochs (Eq. 11 for S^c, Eq. 23-24 for S^r). Each phase ends by restoring
its best state, the state it started from included, so an assignment update that hurts validation quality is
never kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from c2f.trainer.bars import shown as bars_shown
from c2f.trainer.data import InteractionData
from c2f.trainer.data.memory import release_freed_memory
from c2f.trainer.distributed import Distributed
from c2f.trainer.evaluate import eligible_users, evaluate, sample_users
from c2f.trainer.models import EmbeddingModel
from c2f.trainer.sampling import BPRSampler

Progress = Callable[[dict[str, Any]], None]
CRITERION = "ndcg@20"
MONITORED = ("recall@20", "ndcg@20")
log = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    """One line of training history."""

    stage: str  # "coarse" | "fine", or the single-phase method ("ud", "hash", "qr")
    phase: int  # 1: fixed assignment, 2: with assignment updates
    epoch: int  # epoch within the stage, from 1
    loss: float
    seconds: float  # wall time of the epoch's optimisation
    valid: dict[str, float] | None = None
    assignment_update: bool = False
    update_seconds: float = 0.0
    elapsed: float = 0.0  # training seconds since the trainer started, test monitoring excluded
    test: dict[str, float] | None = None  # test figures when monitored (``monitor_every``); never used to select


@dataclass
class PhaseResult:
    """What one phase did. ``best_valid`` is the validation of the state the phase ended with (its starting
    state's when no epoch beat it); ``improved_epochs`` counts evaluated epochs that beat the starting state."""

    stage: str
    phase: int
    start_valid: dict[str, float] | None
    best_valid: dict[str, float] | None
    best_epoch: int  # the stage epoch whose state was kept; 0 when no epoch beat the phase's starting state
    epochs: int
    improved_epochs: int
    seconds: float


@dataclass
class Trainer:
    """Runs phases of BPR training on one model. ``history`` accumulates across phases and stages.

    With ``dist`` (a torchrun launch, see :mod:`trainer.distributed`) each rank trains on its slice of every batch,
    gradients are averaged, and rank 0 validates and takes the assignment decisions (:meth:`agree`).
    """

    data: InteractionData
    batch_size: int
    negatives: int
    reg: float
    eval_every: int
    patience: int
    seed: int
    progress: Progress | None = None
    dist: Distributed | None = None
    criterion: str = CRITERION  # the validation metric early stopping follows
    monitor_every: int = 0  # evaluate the test set every k epochs for a time-to-quality curve (0: never)
    monitor_seconds: float = 0.0
    time_limit: float | None = None  # training seconds (monitoring excluded) after which every phase stops
    lr_schedule: str = "constant"  # "linear": lr decays to 0 over the time limit (or the phase's max epochs)
    sampling: str = "interactions"  # BPR triplets: "interactions" (each once an epoch) or "users" (trainer/sampling.py)
    # sizes of the seeded user samples that validation and test evaluations read (0: every user with truth items)
    valid_sample: int = 0
    test_sample: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    phases: list[PhaseResult] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        # The same seed on every rank: all ranks draw the same batches and take their own slice of each.
        self.sampler = BPRSampler(self.data.train, self.negatives, seed=self.seed, by=self.sampling)
        # Fixed for the whole run: every epoch's validation reads the same users, so epochs compare like with like,
        # and every test evaluation (trained, served compressed, served exact, monitoring) reads the same users.
        self.valid_users = sample_users(self.data.valid, self.valid_sample, self.seed, stream=1)
        self.test_users = sample_users(self.data.test, self.test_sample, self.seed, stream=2)

    def evaluation_samples(self) -> dict[str, dict[str, int]]:
        """What the manifest records about the samples (``metrics.evaluation``)."""
        out = {}
        for split, truth, chosen, requested in (
            ("valid", self.data.valid, self.valid_users, self.valid_sample),
            ("test", self.data.test, self.test_users, self.test_sample),
        ):
            out[split] = {
                "users": int(chosen.size),
                "eligible": int(eligible_users(truth).size),
                "requested": int(requested),
                "seed": int(self.seed),
            }
        return out

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def agree(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rank 0's arrays on every rank (an assignment decision); the arrays themselves without torchrun."""
        return arrays if self.dist is None else self.dist.share_arrays(*arrays)

    def validate(self, model: EmbeddingModel) -> dict[str, float] | None:
        if self.data.valid.nnz == 0:
            return None
        # Under torchrun only rank 0 evaluates; the others receive its figures.
        mine = self.metrics(model, self.data.valid, [self.data.train], self.valid_users) if self.is_main else None
        return mine if self.dist is None else self.dist.share(mine)

    def test_metrics(self, model: EmbeddingModel, label: str | None = None) -> dict[str, float]:
        """Test metrics on the run's test sample (train and valid items excluded); ``label`` shows progress."""
        return self.metrics(model, self.data.test, [self.data.train, self.data.valid], self.test_users, label)

    def metrics(
        self,
        model: EmbeddingModel,
        truth: Any,
        exclude: list[Any],
        users: np.ndarray | None = None,
        progress: str | None = None,
    ) -> dict[str, float]:
        """Full-ranking metrics of the model's scores (item biases included) against ``truth``, over ``users``
        (all users with truth items when None)."""
        H = model.full_embeddings()
        n = model.n_users
        bias = None if model.item_bias is None else model.item_bias.detach()
        result = evaluate(H[:n], H[n:], truth, exclude, users=users, progress=progress, item_bias=bias)
        del H
        release_freed_memory()  # the evaluation's buffers, cached by malloc (c2f/trainer/data/memory.py)
        return result

    def train_epoch(
        self, model: EmbeddingModel, optimizer: torch.optim.Optimizer, batch_size: int | None = None
    ) -> float:
        """One pass over all training interactions (batches of ``batch_size``, default the trainer's); returns the
        mean batch loss."""
        device = next(model.parameters()).device
        n_users = self.data.n_users
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        losses = []
        for users, pos, neg in self.sampler.epoch(batch_size or self.batch_size):
            if self.dist is not None:
                shard = slice(self.dist.rank, None, self.dist.world_size)
                users, pos, neg = users[shard], pos[shard], neg[shard]
                if len(users) == 0:  # a last batch smaller than the world: still take part in the average
                    optimizer.zero_grad(set_to_none=True)
                    self.dist.average_gradients(params)
                    optimizer.step()
                    continue
            b, k = neg.shape
            rows = torch.from_numpy(np.concatenate([users, pos + n_users, neg.reshape(-1) + n_users])).to(device)
            h, sq = model.batch_embeddings(rows)
            # split, not three slices: a slice's backward writes its gradient into a zero-filled array of all 3b
            # rows, three times over
            h_u, h_p, h_n = h.split([b, b, b * k])
            h_n = h_n.view(b, k, -1)
            pos_score = (h_u * h_p).sum(-1, keepdim=True)
            neg_score = (h_u.unsqueeze(1) * h_n).sum(-1)  # (b, k); a batched matmul of 1-row matrices is slower
            if model.item_bias is not None:
                pos_t = torch.from_numpy(pos).to(device)
                neg_t = torch.from_numpy(neg).to(device)
                pos_score = pos_score + model.item_bias[pos_t][:, None]
                neg_score = neg_score + model.item_bias[neg_t]
            loss = F.softplus(neg_score - pos_score).mean()
            # L2 on the batch's layer-0 embeddings (negatives averaged over k), as LightGCN/LEGCF do.
            l2 = (sq[: 2 * b].sum() + sq[2 * b :].sum() / k) / (2 * b)
            total = loss + self.reg * l2
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if self.dist is not None:
                self.dist.average_gradients(params)
            optimizer.step()
            losses.append(float(loss.detach()))
        mean_loss = float(np.mean(losses)) if losses else 0.0
        return mean_loss if self.dist is None else self.dist.mean(mean_loss)

    def run_phase(
        self,
        model: EmbeddingModel,
        *,
        stage: str,
        phase: int,
        lr: float,
        max_epochs: int,
        update: Callable[[], None] | None = None,
        update_every: int = 1,
        after_epoch: Callable[[], None] | None = None,
        patience: int | None = None,
        batch_size: int | None = None,
        start_valid: dict[str, float] | None = None,
    ) -> PhaseResult:
        """Train until validation ``criterion`` has not improved for ``patience`` evaluations (or ``max_epochs``).

        Validation runs every ``eval_every`` epochs (and after the last); only evaluated states compete, so the
        state kept is always one whose validation figures are known. Without validation data every epoch is kept.
        ``start_valid``: the model's validation figures now, when the caller has just computed them.
        """
        patience = self.patience if patience is None else patience
        if self.out_of_time():
            max_epochs = 0  # the run's time is spent: the phase keeps its starting state
        if self.dist is not None:
            self.dist.broadcast_parameters(model)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        start = time.perf_counter()
        first_epoch = 1 + sum(1 for r in self.history if r.stage == stage)
        # The state the phase starts from competes too: a phase never ends worse (on validation) than it began,
        # e.g. phase 2 keeps phase 1's best when every assignment update hurts.
        best_state = model.snapshot()
        best_valid = self.validate(model) if start_valid is None else start_valid
        best_score = best_valid[self.criterion] if best_valid is not None else -1.0
        start_valid = best_valid
        best_epoch, bad_evals, improved = 0, 0, 0  # 0: the starting state
        bar = tqdm(
            range(max_epochs),
            desc=f"{stage} phase {phase}",
            leave=False,
            dynamic_ncols=True,
            disable=not self.is_main or not bars_shown(),
        )
        i = -1
        for i in bar:
            epoch = first_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = lr * self.lr_factor(i, max_epochs)
            t0 = time.perf_counter()
            loss = self.train_epoch(model, optimizer, batch_size)
            if after_epoch is not None:
                after_epoch()
            record = EpochRecord(stage, phase, epoch, loss, time.perf_counter() - t0)
            if update is not None and i % update_every == 0:
                t1 = time.perf_counter()
                update()
                record.assignment_update = True
                record.update_seconds = time.perf_counter() - t1
            if (i + 1) % self.eval_every == 0 or i + 1 == max_epochs:
                record.valid = self.validate(model)
            if self.monitor_every and (i + 1) % self.monitor_every == 0 and self.is_main:
                t2 = time.perf_counter()
                record.test = self.test_metrics(model)
                self.monitor_seconds += time.perf_counter() - t2
                log.info("test at %s epoch %d: %s", stage, epoch, {k: round(record.test[k], 4) for k in MONITORED})
            record.elapsed = time.perf_counter() - self.started - self.monitor_seconds
            self.history.append(record)
            self._report(record, bar)
            out_of_time = self.out_of_time()
            if out_of_time and record.valid is None and start_valid is not None:
                record.valid = self.validate(model)  # the last state competes before the phase ends
            if record.valid is None:
                if start_valid is None:  # no validation data at all: the latest state is the one kept
                    best_state, best_epoch = model.snapshot(), epoch
                if out_of_time:
                    break
                continue  # an epoch between evaluations never replaces an evaluated state
            score = record.valid[self.criterion]
            if start_valid is not None and score > start_valid[self.criterion]:
                improved += 1
            if score > best_score:
                best_score, best_epoch, best_valid, bad_evals = score, epoch, record.valid, 0
                best_state = model.snapshot()
            else:
                bad_evals += 1
                if bad_evals >= patience:
                    break
            if out_of_time:
                break
        bar.close()
        model.restore(best_state)
        result = PhaseResult(
            stage=stage,
            phase=phase,
            start_valid=start_valid,
            best_valid=best_valid,
            best_epoch=best_epoch,
            epochs=i + 1,
            improved_epochs=improved,
            seconds=time.perf_counter() - start,
        )
        self.phases.append(result)
        return result

    def lr_factor(self, epoch_index: int, max_epochs: int) -> float:
        """The multiplier of the phase's lr for its epoch ``epoch_index`` (0-based): 1 for a constant schedule; for
        "linear", 1 − the budget spent so far (training seconds / time_limit, or epoch_index / max_epochs)."""
        if self.lr_schedule == "constant":
            return 1.0
        if self.time_limit is not None:
            spent = (time.perf_counter() - self.started - self.monitor_seconds) / self.time_limit
        else:
            spent = epoch_index / max(max_epochs, 1)
        return max(0.0, 1.0 - spent)

    def out_of_time(self) -> bool:
        """Whether the run's training seconds (test monitoring excluded) have reached ``time_limit``."""
        if self.time_limit is None:
            return False
        return time.perf_counter() - self.started - self.monitor_seconds >= self.time_limit

    def kept_valid(self, stage: str) -> dict[str, float] | None:
        """Validation figures of the state a stage ended with: its last phase's kept state (which may be the
        state the phase started from, evaluated before its first epoch)."""
        for result in reversed(self.phases):
            if result.stage == stage:
                return result.best_valid
        return None

    def _report(self, record: EpochRecord, bar: Any) -> None:
        postfix: dict[str, Any] = {"loss": f"{record.loss:.4f}"}
        if record.valid is not None:
            postfix[f"val_{self.criterion}"] = f"{record.valid[self.criterion]:.4f}"
        bar.set_postfix(postfix)
        if self.progress is not None and self.is_main:
            self.progress(
                {
                    "stage": record.stage,
                    "phase": record.phase,
                    "epoch": record.epoch,
                    "loss": record.loss,
                    "valid": record.valid,
                    "elapsed": time.perf_counter() - self.started,
                }
            )

    def history_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.history]

    def phase_dicts(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.phases]
