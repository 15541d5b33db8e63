"""Training configuration: one dataclass, every field a tunable with the paper's (or the released code's) default.

This is the one definition of the training parameters: ``c2f train -p key=value`` builds it with
:meth:`TrainConfig.from_dict`, and the HTTP schema of ``POST /train`` is derived from it
(:func:`contract.jobspec.train_params_model`) with the bounds in :data:`contract.jobspec.PARAM_BOUNDS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from c2f.contract.dtypes import STORE_DTYPES, StoreDtype
from c2f.contract.methods import get_spec

# how BPR triplets are drawn (c2f/trainer/sampling.py): each training pair once an epoch, or users uniformly
Sampling = Literal["interactions", "users"]
Criterion = Literal["recall@1", "ndcg@1", "recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20"]

# Presets of the evaluation and optimisation protocol, applied under explicitly given values by ``from_dict``.
# "ours": validation carved from train (test.txt untouched), the defaults below. "released": the authors' released
# code (../shared/notes/reference-implementation.md): validation = ceil(|test_u|/3) test items per user, lr 1e-3
# coarse / 3e-3 fine, L2 5e-4, 5 negatives, batches 8192 / 32768, validation every 5 epochs on NDCG@5 with
# patience 5 evaluations per phase.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "ours": {},
    "released": {
        "valid_from": "test",
        "lr": 1e-3,
        "lr_fine": 3e-3,
        "reg": 5e-4,
        "negatives": 5,
        "batch_size": 8192,
        "batch_size_fine": 32768,
        "eval_every": 5,
        "patience": 5,
        "patience_fine": None,  # the released code's patience 5 in both stages
        "criterion": "ndcg@5",
    },
    # LightGCN's own: all of train.txt trains (no validation, so every phase runs its `epochs`), test.txt is the
    # test; the test figures are logged every 10 epochs (LightGCN prints them) for a time-to-quality curve only.
    "lightgcn": {"valid_fraction": 0.0, "monitor_every": 10},
}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run.

    Coarse stage (LEGCF, paper §3.1): ``m_c`` meta-embeddings, ``t_c`` per entity, assignment update every ``f_c``
    epochs of phase 2. Fine stage (C2F, §3.2-3.3): ``m_r`` fine meta-embeddings of ``d_r`` SparsePCA components,
    ``t_r`` per coarse row, mixing weight ``w_cr`` (Eq. 17), soft threshold ``soft_lambda`` (Eq. 16; ``None``
    re-chooses it after every epoch so that ``target_nonzero`` of the fine values are non-zero at convergence).
    """

    method: str = "c2f"  # a registered method (contract.methods.METHODS)
    dim: int = 128
    layers: int = 3
    # optimisation
    epochs: int = 300  # upper bound per phase; early stopping decides
    batch_size: int = 8192
    negatives: int = 1
    lr: float = 1e-2
    lr_fine: float = 3e-3
    reg: float = 1e-4
    # fine stage and continuation phase batch (None: batch_size); the released code's 32768, part of the default
    # fine stage below
    batch_size_fine: int | None = 32768
    # early stopping: validation every eval_every epochs; a phase stops after `patience` evaluations without
    # improving `criterion` (recall@K or ndcg@K, K in 1, 5, 10, 20); per-stage patience overrides `patience`
    criterion: Criterion = "ndcg@20"
    eval_every: int = 1
    patience: int = 5
    # evaluation at scale: early stopping reads a fixed sample of this many validation users (seeded by `seed`;
    # 0: all), and the final test evaluations (trained, served compressed, served exact) all read the same sample of
    # at most this many test users (0: all). Sampled metrics carry standard errors; sizes and seed are recorded in
    # the manifest (metrics.evaluation).
    valid_users: int = 20_000
    test_users: int = 100_000
    # wall-clock cap on the run's training: once this many seconds of training (test monitoring excluded) have
    # passed, the current phase ends after its epoch and no further phase starts (None: no cap). With
    # validation the best evaluated state is still the one kept; without it (protocol lightgcn), the last.
    time_limit: float | None = None
    # learning rate over a phase: "constant", or "linear" decay from lr to 0 over the run's budget (the fraction of
    # time_limit spent, or without a time limit the fraction of the phase's max epochs run), set before each epoch.
    # For a fixed budget, decaying to zero is what lets a large early lr settle (docs/benchmarks-history.md, "UD-64
    # in one hour").
    lr_schedule: Literal["constant", "linear"] = "constant"
    # the full table's (ud) layer-0 initialisation: None: Xavier uniform (LightGCN's paper, std ~0.005 for
    # Gowalla's 70,839 × 64); a value: normal(0, init_std), what LightGCN's PyTorch code uses (0.1)
    init_std: float | None = None
    # BPR triplets an epoch (nnz of them): "interactions" draws each training pair once; "users" draws users
    # uniformly and a positive of each uniformly, as LightGCN's code does (c2f/trainer/sampling.py)
    sampling: Sampling = "interactions"
    # per-stage patience (None: ``patience``). The fine stage's default is 2: it kept the quality of 5 in fewer
    # epochs, and the fine stage improves early or not at all (docs/benchmarks-history.md, "The fine stage's
    # patience" and "The fine stage's forward at scale")
    patience_coarse: int | None = None
    patience_fine: int | None = 2
    # a learned per-item score offset added to h_u·h_i (the released code's entity biases; a per-user offset
    # cancels in BPR and in ranking, so only the n_items item biases are kept). Counted in #param and bytes. On by
    # default: part of the best model at equal memory on Gowalla (docs/benchmarks-history.md, "Gowalla quality over
    # 3 seeds").
    biases: bool = True
    # coarse stage
    m_c: int = 300
    t_c: int = 2
    w_star: float = 0.9
    f_c: int = 1
    raw_assignment: bool = False  # True: Eq. 11's projected values as weights (paper); False: rows sum to 1
    # fine stage. The defaults are the released code's mechanics (fine_forward, fine_sr, lambda_schedule, w_cr,
    # t_r, target_nonzero, fine_rows, batch_size_fine, biases): on Gowalla they beat their own coarse stage, where
    # the paper's fine stage as printed (fine_forward="paper", fine_sr="normalised", lambda_schedule="recalibrate",
    # w_cr=0.5, t_r=5, target_nonzero=0.5, fine_rows="most_used") did not (BENCHMARKS.md, "Quality per dataset")
    m_r: int = 100
    t_r: int = 4
    d_r: int = 80
    w_cr: float = 0.2
    soft_lambda: float | None = None
    target_nonzero: float = 0.25
    f_r: int = 1
    fine_rows: Literal["most_used", "random"] = "random"
    fine_init: Literal["codes", "reconstruction"] = "codes"  # E^r from SparsePCA codes (paper) or U·V
    # fine-stage forward: "paper" Eq. 17-22; "released": layer 0 = [tanh(S^c·E^c); Ê^c; tanh(S_λ(E^r))] and the
    # released code's per-layer coarse/fine correction with gate w_cr (c2f/trainer/models.py, Fine); "auto": the one
    # whose starting state validates better (ties: released), recorded in the manifest's info["fine_forward"] and
    # published as the config's fine_forward. Why: the released forward is the better fine stage on Gowalla, but
    # its correction adds S^c·h_c, a sum over the ~2N/m_c entities of a code, to every entity, which can start it
    # far below the paper's forward on large, sparse tables (docs/benchmarks-history.md, "The fine stage's forward
    # at scale"). Each forward is judged with its own item biases (Fine.starting_item_bias)
    fine_forward: Literal["auto", "paper", "released"] = "auto"
    # the fine stage's item biases at its start: the coarse stage's unchanged ("coarse"), or rescaled to each
    # forward's score spread ("rescaled", which also lets fine_forward=auto judge the released forward at its own
    # scale). "coarse" is the default: over 3 seeds "rescaled" published no better a model on lastfm or ml-1m
    # (BENCHMARKS.md, "Quality per byte on every dataset")
    fine_bias_start: Literal["coarse", "rescaled"] = "coarse"
    # S^r weights from the kept Eq. 23 scores: positive parts normalised to sum 1, or the released row softmax
    fine_sr: Literal["normalised", "softmax"] = "softmax"
    # soft threshold: re-chosen after every epoch to keep target_nonzero, or chosen once at init and then fixed
    lambda_schedule: Literal["recalibrate", "fixed"] = "fixed"
    # legcf only, controls for "does the fine level help or just more training": after the two coarse phases a
    # third phase with the fine stage's lr, batch and patience that trains E^c (+ biases) with S^c fixed
    # ("coarse") or only the item biases ("biases")
    continuation: Literal["none", "coarse", "biases"] = "none"
    # reuse the coarse stage (E_c, S_c) of a published legcf/c2f version directory instead of training it (c2f: the
    # fine stage starts from it; legcf: only the continuation phase, if any, trains)
    coarse_from: str | None = None
    # c2f only: when the fine stage's kept state validates below its own coarse stage (on `criterion`), publish the
    # coarse stage (method legcf) instead and record both figures in the manifest's info["stage_kept"]. On Gowalla
    # the paper's fine stage improved on its start in 1 of 21 evaluated epochs over two seeds and shipped a state
    # that tested below its coarse stage on one (BENCHMARKS.md): a user asking for c2f must not get a worse model
    # than the coarse stage it already trained. Off: always publish the fine stage (benchmarks of the fine stage).
    fine_fallback: bool = True
    # equal-memory baselines (c2f/contract/methods.py): hash, rows B of the shared hashed table (0: ceil(N/16));
    # qr, rows m of the remainder table (the quotient table has ceil(N/m); 0: ceil(sqrt(N))) and how Q and R combine
    hash_buckets: int = 0
    qr_buckets: int = 0
    qr_combine: Literal["mult", "sum"] = "mult"
    # memory budget (c2f/contract/budget.py): the method's size knob (ud d, legcf m_c, c2f m_c and m_r, hash B, qr m)
    # is set to the largest value whose published embedding bytes fit; a percentage of the float32 full table
    # N·d·4 (2.0 = 2%) or a number of bytes, not both
    budget: float | None = None
    budget_bytes: int | None = None
    # what a budget counts: "stored", every embedding array the artifact stores (exact mode's layer-0 arrays
    # too: what is shipped); "served", what compressed serving holds to score (Footprint.serving_memory_bytes: the
    # served form, the (N, d) float32 table hash and qr rebuild at load, item biases). Under "served" a method
    # without a sparse form and with pq_subspaces > 0 is sized by its number of codes (the largest divisor of dim
    # that fits), and one without codes by dim
    budget_counts: Literal["stored", "served"] = "stored"
    # a budget sizes legcf/c2f's m_c to at most N // budget_entities_per_row codebook rows (0: no cap), leaving
    # the rest of the budget unspent: each row is trained by the gradients of the ~t_c·N/m_c entities that use it,
    # and past a few thousand rows the rows learn less than fewer, better-trained ones (docs/benchmarks-history.md,
    # "The budget knob's cap on codebook rows")
    budget_entities_per_row: int = 64
    # ablations (paper Fig. 4): A random E^r init, B no SparsePCA, C no soft thresholding, D codebook-only S^r
    ablation: Literal["none", "A", "B", "C", "D"] = "none"
    # data and protocol (see PROTOCOLS)
    protocol: Literal["ours", "released", "lightgcn"] = "ours"
    monitor_every: int = 0  # evaluate test every k epochs into the history (a curve; never used for selection)
    valid_fraction: float = 0.1
    valid_from: Literal["train", "test"] = "train"
    seed: int = 2024
    device: str = "auto"
    # export
    # how the compressed serving form is fitted to the propagated embeddings (c2f/trainer/export.py)
    served_fit: Literal["weights", "codebook", "reassign"] = "reassign"
    # (index, weight) terms per entity in the compressed serving form; None: t_c. More terms serve closer to the
    # exact mode for N·(index + weight) more bytes each; other than t_c needs served_fit="reassign" (the terms are
    # picked by matching pursuit, c2f/trainer/export.py)
    served_terms: int | None = None
    # a product-quantized part of the served vectors (c2f/trainer/quantize.py): pq_subspaces uint8 codes an entity
    # (bytes per entity) plus pq_subspaces × 256 × d/pq_subspaces codebook values; 0: none. Methods with the sparse
    # form above quantize what it leaves (the residual H_full − S·H_meta); the others (ud, hash, qr) their whole
    # propagated vectors, which gives them a compressed serving mode (docs/budgets.md)
    pq_subspaces: int = 0
    # with codes: store each item's scale (n_items values, store_dtype) that gives its served vector the norm of its
    # exact one (c2f/contract/methods.py, pq_item_scale). None: on where the codes are the whole served form (ud, hash,
    # qr), off on the sparse form (legcf, c2f), where it did not help (docs/budgets.md)
    pq_item_norms: bool | None = None
    # with codes: at most this many epochs of BPR training of the codebooks (and item scales) on the served scores
    # after k-means, the codes fixed (c2f/trainer/refine.py); early stopping on validation keeps k-means' codebooks
    # unless training beats them. 0: k-means' codebooks as they are. On by default: it closes most of what k-means
    # loses (docs/benchmarks-history.md, "Training the served codes"). No effect without codes
    pq_refine_epochs: int = 60
    pq_refine_lr: float = 1e-3
    # stored type of the embedding arrays (weights, codebooks, tables): float16 halves them and is computed in
    # float32 everywhere; indices are always stored in the smallest unsigned type that holds their bound
    # (c2f/contract/dtypes.py). float16 is the default because it served the same Recall@20 as float32 on planted data
    # at 2, 4 and 8 served terms, both serving modes (docs/benchmarks-history.md, "Served terms and stored dtypes")
    store_dtype: StoreDtype = "float16"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        get_spec(self.method)  # a clear error for an unknown method (MethodError is a ValueError)
        if self.criterion not in get_args(Criterion):
            raise ValueError(f"criterion must be recall@K or ndcg@K with K in 1, 5, 10, 20; got {self.criterion!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}")
        if self.budget is not None and self.budget_bytes is not None:
            raise ValueError("give a memory budget as budget (percent) or budget_bytes, not both")
        percent_bad = self.budget is not None and not self.budget > 0
        if percent_bad or (self.budget_bytes is not None and self.budget_bytes < 1):
            raise ValueError("a memory budget must be positive")
        if self.budget_counts not in ("stored", "served"):
            raise ValueError(f"budget_counts must be 'stored' or 'served'; got {self.budget_counts!r}")
        if isinstance(self.budget_entities_per_row, bool) or not isinstance(self.budget_entities_per_row, int):
            raise ValueError(f"budget_entities_per_row must be an integer; got {self.budget_entities_per_row!r}")
        if self.budget_entities_per_row < 0:
            raise ValueError(f"budget_entities_per_row must be 0 (no cap) or more; got {self.budget_entities_per_row}")
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear'; got {self.lr_schedule!r}")
        if self.init_std is not None and not (isinstance(self.init_std, int | float) and self.init_std > 0):
            raise ValueError(f"init_std must be a positive number or None; got {self.init_std!r}")
        if self.fine_bias_start not in ("coarse", "rescaled"):
            raise ValueError(f"fine_bias_start must be 'coarse' or 'rescaled'; got {self.fine_bias_start!r}")
        if self.sampling not in get_args(Sampling):
            raise ValueError(f"sampling must be one of {', '.join(get_args(Sampling))}; got {self.sampling!r}")
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype must be one of {', '.join(STORE_DTYPES)}; got {self.store_dtype!r}")
        if self.served_terms is not None:
            if isinstance(self.served_terms, bool) or not isinstance(self.served_terms, int):
                raise ValueError(f"served_terms must be an integer or None; got {self.served_terms!r}")
            if not 1 <= self.served_terms <= self.m_c:
                raise ValueError(f"served_terms must be between 1 and m_c ({self.m_c}); got {self.served_terms}")
            if self.served_terms != self.t_c and self.served_fit != "reassign":
                raise ValueError(
                    f"served_terms ({self.served_terms}) other than t_c ({self.t_c}) needs served_fit='reassign' "
                    f"(the {self.served_fit!r} fit keeps the trained t_c indices); got served_fit={self.served_fit!r}"
                )

        if isinstance(self.pq_subspaces, bool) or not isinstance(self.pq_subspaces, int) or self.pq_subspaces < 0:
            raise ValueError(f"pq_subspaces must be 0 (none) or a positive integer; got {self.pq_subspaces!r}")
        if self.pq_subspaces and self.dim % self.pq_subspaces:
            raise ValueError(f"pq_subspaces ({self.pq_subspaces}) must divide dim ({self.dim})")
        refine = self.pq_refine_epochs
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise ValueError(f"pq_refine_epochs must be a non-negative integer; got {refine!r}")
        if not (isinstance(self.pq_refine_lr, int | float) and self.pq_refine_lr > 0):
            raise ValueError(f"pq_refine_lr must be a positive number; got {self.pq_refine_lr!r}")
        if self.pq_item_norms is not None and not isinstance(self.pq_item_norms, bool):
            raise ValueError(f"pq_item_norms must be true, false or null (automatic); got {self.pq_item_norms!r}")

    @property
    def item_norms_served(self) -> bool:
        """Whether export stores ``pq_item_scale``: only with codes; ``pq_item_norms``, or when None, whether the
        codes are the whole served form (a method without the sparse form)."""
        if not self.pq_subspaces:
            return False
        if self.pq_item_norms is not None:
            return self.pq_item_norms
        return not get_spec(self.method).compressed

    @property
    def terms_served(self) -> int:
        """(index, weight) terms per entity of the compressed serving form: served_terms, or t_c when None."""
        return self.t_c if self.served_terms is None else self.served_terms

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from ``values``; the protocol preset named by ``values["protocol"]`` fills the fields that
        ``values`` does not give."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}")
        protocol = values.get("protocol", "ours")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
        return cls(**{**PROTOCOLS[protocol], **values})

    def patience_for(self, stage: str) -> int:
        """Patience (in evaluations) of a stage: "coarse" (and "ud"), or "fine" (the fine stage, continuation)."""
        own = self.patience_fine if stage == "fine" else self.patience_coarse
        return self.patience if own is None else own
