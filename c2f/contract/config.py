"""Training configuration: typed groups of parameters by concern, composed into one :class:`TrainConfig`.

This is the one definition of the training parameters and the one place they are checked. Each group dataclass
(:class:`ModelConfig`, :class:`OptimConfig`, :class:`EvalConfig`, :class:`CoarseConfig`, :class:`FineConfig`,
:class:`BaselineConfig`, :class:`BudgetConfig`, :class:`ExportConfig`) declares its fields with the paper's (or the
released code's) defaults, documents them in its ``Attributes`` (units, shapes, the paper's section; why a default
is what it is, with a pointer to the measurement in BENCHMARKS.md or docs/benchmarks-history.md) and checks them in
its ``check``. :class:`TrainConfig` inherits every group, so that

- its fields are flat, and code reads them flat: ``config.lr_fine``, not ``config.fine.lr_fine``.
  ``TrainConfig(m_c=64)``, ``dataclasses.replace(config, m_c=64)``, :meth:`TrainConfig.from_dict` (``c2f train -p
  key=value``, ``c2f.train(data, **params)``, the worker) and :data:`PROTOCOLS` take the flat keys, and
  :meth:`TrainConfig.to_dict` (a manifest's ``config``) is the flat dict it always was, so old artifacts read as
  before;
- :meth:`TrainConfig.validate` (run on every construction) runs each group's ``check``, then the checks across
  groups. The HTTP model of ``POST /train``'s params (:func:`contract.jobspec.train_params_model`) is derived from the
  fields and validates a request by building the config from it, so the CLI, the Python API, the worker and the HTTP
  model refuse the same values with the same messages; :data:`contract.jobspec.PARAM_BOUNDS` adds the ranges a
  network request must keep within.

:meth:`TrainConfig.from_groups` builds a config from group instances and :meth:`TrainConfig.group` reads one back;
docs/configuration.md lists the groups (generated from their ``Attributes``: tests/contract/test_config.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

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


# What `c2f train DATA`, `c2f.train(data)` and `POST /train` train when they name no method: the recipe that served
# the best Recall@20 per served byte on the datasets (BENCHMARKS.md, "Quality per dataset"): a d = 64 full table
# without item biases, served from 16 product-quantized codes an item, every user folded in from its items (no user
# row served). A budget given with it counts served bytes, as a percentage of the d = 128 table. Naming a method,
# even "ud", starts from TrainConfig's own defaults instead (the paper's, for c2f).
DEFAULT_RECIPE: dict[str, Any] = {
    "method": "ud",
    "dim": 64,
    "biases": False,
    "pq_subspaces": 16,
    "served_users": "fold_in",
    "budget_counts": "served",
    "budget_reference_dim": 128,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ConfigGroup:
    """A group of training parameters: a dataclass whose ``check`` refuses bad values of its own fields (run when
    the group is built alone, and by :meth:`TrainConfig.validate`)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ValueError for a bad value of this group's fields."""


@dataclass
class ModelConfig(ConfigGroup):
    """What is trained: the method and the LightGCN encoder (paper Eq. 4-7) whose layer-0 table it compresses.

    Attributes:
        method: a registered method (contract.methods.METHODS): ud (the full table), legcf, c2f, hash or qr.
        dim: embedding size d.
        layers: LightGCN propagation layers L (0: none).
        biases: a learned per-item score offset b_i added to h_u·h_i (the released code's entity biases; a per-user
            offset cancels in BPR and in ranking, so only the n_items item biases are kept), stored, served and
            counted in #param and bytes. On: part of the best model at equal memory (docs/benchmarks-history.md,
            "Gowalla quality over 3 seeds").
        init_std: ud's layer-0 initialisation: None, Xavier uniform (LightGCN's paper); a value, normal(0, init_std),
            what LightGCN's PyTorch code uses (0.1).
    """

    method: str = "c2f"
    dim: int = 128
    layers: int = 3
    biases: bool = True
    init_std: float | None = None

    def check(self) -> None:
        get_spec(self.method)  # a clear error for an unknown method (MethodError is a ValueError)
        if self.init_std is not None and not (isinstance(self.init_std, int | float) and self.init_std > 0):
            raise ValueError(f"init_std must be a positive number or None; got {self.init_std!r}")


@dataclass
class OptimConfig(ConfigGroup):
    """BPR optimisation (paper Eq. 9) shared by every stage (the fine stage's own lr, batch and patience: FineConfig).

    Attributes:
        epochs: upper bound on the epochs of each phase; early stopping decides.
        batch_size: BPR triplets per batch (the coarse stage, ud, hash, qr).
        negatives: sampled negative items per (user, positive) pair.
        lr: Adam learning rate (ud, hash, qr and the coarse stage).
        reg: weight of Eq. 9's L2 term on the batch's layer-0 rows.
        sampling: the triplets of an epoch (nnz of them): "interactions" draws each training pair once; "users"
            draws users uniformly and a positive of each uniformly, as LightGCN's code does (c2f/trainer/sampling.py).
        lr_schedule: the learning rate over a phase: "constant", or "linear" decay from lr to 0 over the run's budget
            (the fraction of time_limit spent, or without one the fraction of the phase's epochs run), set before each
            epoch. Decaying to zero lets a large early lr settle within a fixed budget (docs/benchmarks-history.md,
            "UD-64 in one hour with a decaying lr").
        time_limit: seconds of training (test monitoring excluded) after which the current phase ends after its
            epoch and no further phase starts (None: no cap). With validation the best evaluated state is kept;
            without it (protocol lightgcn), the last.
        seed: seed of the validation split, the initialisation, the sampler and the evaluation samples.
        device: "auto", "cpu", "mps", "cuda" or "cuda:N" (c2f/trainer/distributed.py).
    """

    epochs: int = 300
    batch_size: int = 8192
    negatives: int = 1
    lr: float = 1e-2
    reg: float = 1e-4
    sampling: Sampling = "interactions"
    lr_schedule: Literal["constant", "linear"] = "constant"
    time_limit: float | None = None
    seed: int = 2024
    device: str = "auto"

    def check(self) -> None:
        if self.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule must be 'constant' or 'linear'; got {self.lr_schedule!r}")
        if self.sampling not in get_args(Sampling):
            raise ValueError(f"sampling must be one of {', '.join(get_args(Sampling))}; got {self.sampling!r}")


@dataclass
class EvalConfig(ConfigGroup):
    """The evaluation protocol: the validation split, early stopping and the test evaluations.

    Attributes:
        protocol: a preset of PROTOCOLS ("ours", "released", "lightgcn") that TrainConfig.from_dict applies under
            the values given.
        valid_fraction: share of each user's training items held out for validation (0: none, every phase runs its
            epochs).
        valid_from: where validation items come from: "train" (test untouched) or "test" (the released code's).
        criterion: the early-stopping metric, recall@K or ndcg@K with K in 1, 5, 10, 20.
        eval_every: validate every this many epochs.
        patience: a phase stops after this many evaluations without improving criterion (per-stage overrides:
            patience_coarse, patience_fine).
        valid_users: early stopping reads a fixed sample of this many validation users (seeded by seed; 0: all).
        test_users: the final test evaluations (trained, served compressed, served exact) read one shared sample of
            at most this many test users (0: all). Sampled metrics carry standard errors; sizes and seed are recorded
            in the manifest (metrics.evaluation).
        monitor_every: evaluate test every k epochs into the history (a curve; never used for selection; 0: never).
    """

    protocol: Literal["ours", "released", "lightgcn"] = "ours"
    valid_fraction: float = 0.1
    valid_from: Literal["train", "test"] = "train"
    criterion: Criterion = "ndcg@20"
    eval_every: int = 1
    patience: int = 5
    valid_users: int = 20_000
    test_users: int = 100_000
    monitor_every: int = 0

    def check(self) -> None:
        if self.criterion not in get_args(Criterion):
            raise ValueError(f"criterion must be recall@K or ndcg@K with K in 1, 5, 10, 20; got {self.criterion!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {self.protocol!r}")


@dataclass
class CoarseConfig(ConfigGroup):
    """The coarse stage (LEGCF, paper §3.1, Algorithm 1): each entity's layer-0 row is S^c (N, t_c) over the codebook
    E^c (m_c, d). Phase 1 trains E^c with S^c fixed; phase 2 also re-assigns S^c every f_c epochs (Eq. 11).

    Attributes:
        m_c: coarse meta-embeddings, the rows of E^c.
        t_c: meta-embeddings per entity (at most m_c).
        w_star: the initial weight of an entity's own METIS part (the other t_c − 1 share 1 − w_star).
        f_c: phase 2 re-assigns every f_c epochs.
        raw_assignment: True: Eq. 11's projected values as the weights (the paper's); False: rows sum to 1
            (docs/training.md, "Where we depart from the paper").
        patience_coarse: the coarse stage's (and ud's, hash's, qr's) patience; None: patience.
        continuation: legcf only, a control for "does the fine level help or just more training": after the two
            coarse phases a third with the fine stage's lr, batch and patience trains E^c (+ biases) with S^c fixed
            ("coarse") or only the item biases ("biases"); "none": no third phase.
        coarse_from: reuse the coarse stage (E^c, S^c) of a published legcf/c2f version directory instead of training
            it (c2f: the fine stage starts from it; legcf: only the continuation phase, if any, trains).
    """

    m_c: int = 300
    t_c: int = 2
    w_star: float = 0.9
    f_c: int = 1
    raw_assignment: bool = False
    patience_coarse: int | None = None
    continuation: Literal["none", "coarse", "biases"] = "none"
    coarse_from: str | None = None

    def check(self) -> None:
        if self.t_c > self.m_c:
            raise ValueError(f"t_c ({self.t_c}) must not exceed m_c ({self.m_c})")


@dataclass
class FineConfig(ConfigGroup):
    """The fine stage (C2F, paper §3.2-3.3, Algorithm 2), E^c and S^c frozen: S^r (m_c, t_r) over S_λ(E^r) (m_r, d),
    E^r initialised from SparsePCA codes of d_r components, mixed into the coarse rows with weight w_cr (Eq. 17),
    soft threshold λ (Eq. 16).

    The defaults are the released code's mechanics (fine_forward, fine_sr, lambda_schedule, w_cr, t_r,
    target_nonzero, fine_rows, batch_size_fine, biases), the better fine stage (BENCHMARKS.md, "Quality per
    dataset"); the paper's as printed is fine_forward="paper", fine_sr="normalised", lambda_schedule="recalibrate",
    w_cr=0.5, t_r=5, target_nonzero=0.5, fine_rows="most_used" (docs/training.md).

    Attributes:
        lr_fine: Adam learning rate of the fine stage and of legcf's continuation phase.
        batch_size_fine: their batch (None: batch_size); the released code's 32768.
        patience_fine: their patience (None: patience). 2: the fine stage improves early or not at all
            (docs/benchmarks-history.md, "The fine stage's patience").
        m_r: fine meta-embeddings, the rows of E^r (at least t_r).
        t_r: fine rows per coarse row.
        d_r: SparsePCA components of E^r's initialisation (zero-padded to d).
        w_cr: the fine correction's weight in Ê^c = (1 − w_cr)·E^c + w_cr·S^r·S_λ(E^r) (Eq. 17), the released
            forward's gate.
        soft_lambda: λ of Eq. 16; None: chosen so that target_nonzero of the fine values are non-zero.
        target_nonzero: the share of non-zero values in S_λ(E^r) that λ is chosen for.
        f_r: phase 2 re-assigns S^r every f_r epochs (Eq. 23-24).
        fine_rows: which coarse rows initialise E^r: m_r "random" ones or the m_r "most_used".
        fine_init: E^r from SparsePCA "codes" (the paper's) or the "reconstruction" U·V.
        fine_forward: "paper" (Eq. 17-22); "released", layer 0 = [tanh(S^c·E^c); Ê^c; tanh(S_λ(E^r))] with the released
            code's per-layer coarse/fine correction gated by w_cr (c2f/trainer/forwards.py); "auto", the one whose
            starting state validates better (ties: released), recorded in the manifest's info["fine_forward"] and
            published as the config's fine_forward. Why auto: the released forward is the better fine stage, but its
            correction adds S^c·h_c, a sum over the ~2N/m_c entities of a code, to every entity, which can start it
            far below the paper's on large, sparse tables (docs/benchmarks-history.md, "The fine stage's forward at
            scale").
        fine_bias_start: the fine stage's item biases at its start: the coarse stage's unchanged ("coarse") or
            rescaled to each forward's score spread ("rescaled"). "coarse": "rescaled" published no better a model
            (docs/benchmarks-history.md, "Quality per byte on every dataset").
        fine_sr: S^r weights from the kept Eq. 23 scores: positive parts "normalised" to sum 1, or the released row
            "softmax".
        lambda_schedule: λ "recalibrate"d after every epoch to keep target_nonzero, or chosen at init and then
            "fixed".
        fine_fallback: c2f only: when the fine stage's kept state validates below its own coarse stage (on
            criterion), publish the coarse stage (method legcf) and record both figures in the manifest's
            info["stage_kept"]: a user asking for c2f must not get a worse model than the coarse stage it already
            trained (a fine stage can validate below it: docs/benchmarks-history.md, "Gowalla quality over 3 seeds").
            Off: always publish the fine stage (benchmarks of the fine stage).
        ablation: the paper's Fig. 4: "A" random E^r init, "B" no SparsePCA, "C" no soft thresholding, "D"
            codebook-only S^r; "none".
    """

    lr_fine: float = 3e-3
    batch_size_fine: int | None = 32768
    patience_fine: int | None = 2
    m_r: int = 100
    t_r: int = 4
    d_r: int = 80
    w_cr: float = 0.2
    soft_lambda: float | None = None
    target_nonzero: float = 0.25
    f_r: int = 1
    fine_rows: Literal["most_used", "random"] = "random"
    fine_init: Literal["codes", "reconstruction"] = "codes"
    fine_forward: Literal["auto", "paper", "released"] = "auto"
    fine_bias_start: Literal["coarse", "rescaled"] = "coarse"
    fine_sr: Literal["normalised", "softmax"] = "softmax"
    lambda_schedule: Literal["recalibrate", "fixed"] = "fixed"
    fine_fallback: bool = True
    ablation: Literal["none", "A", "B", "C", "D"] = "none"

    def check(self) -> None:
        if self.t_r > self.m_r:
            raise ValueError(f"t_r ({self.t_r}) must not exceed m_r ({self.m_r})")
        if self.fine_bias_start not in ("coarse", "rescaled"):
            raise ValueError(f"fine_bias_start must be 'coarse' or 'rescaled'; got {self.fine_bias_start!r}")


@dataclass
class BaselineConfig(ConfigGroup):
    """The equal-memory baselines' sizes (c2f/contract/methods.py, docs/budgets.md).

    Attributes:
        hash_buckets: hash: rows B of the shared hashed table (0: ceil(N/16)).
        qr_buckets: qr: rows m of the remainder table; the quotient table has ceil(N/m) (0: ceil(sqrt(N))).
        qr_combine: qr: how the quotient and remainder rows combine, "mult" or "sum".
    """

    hash_buckets: int = 0
    qr_buckets: int = 0
    qr_combine: Literal["mult", "sum"] = "mult"


@dataclass
class BudgetConfig(ConfigGroup):
    """A memory budget (c2f/contract/budget.py, docs/budgets.md): the method's size knob (ud d, legcf m_c, c2f m_c
    and m_r, hash B, qr m) is set to the largest value whose published embedding bytes fit.

    Attributes:
        budget: a percentage of the float32 full table N·d·4 (2.0 = 2%; d: budget_reference_dim); not with
            budget_bytes.
        budget_bytes: a number of bytes; not with budget.
        budget_counts: what a budget counts: "stored", every embedding array the artifact stores (exact mode's
            layer-0 arrays too: what is shipped); "served", what compressed serving holds to score
            (Footprint.serving_memory_bytes: the served form, the (N, d) float32 table hash and qr rebuild at load,
            item biases). Under "served" a method without a sparse form and with pq_subspaces > 0 is sized by its
            number of codes (the largest divisor of dim that fits), and one without codes by dim.
        budget_entities_per_row: a budget sizes legcf/c2f's m_c to at most N // this many codebook rows (0: no cap),
            leaving the rest of the budget unspent: each row is trained by the ~t_c·N/m_c entities that use it, and
            past a few thousand rows fewer, better-trained rows learn more (docs/benchmarks-history.md, "The budget
            knob's cap on codebook rows").
        budget_reference_dim: the d of the float32 N·d table a percentage budget is of (None: dim), so that one
            percentage means the same bytes whatever d the model trains at (the benchmarks' reference is d = 128).
    """

    budget: float | None = None
    budget_bytes: int | None = None
    budget_counts: Literal["stored", "served"] = "stored"
    budget_entities_per_row: int = 64
    budget_reference_dim: int | None = None

    def check(self) -> None:
        reference = self.budget_reference_dim
        if reference is not None and (not _is_int(reference) or reference < 1):
            raise ValueError(f"budget_reference_dim must be a positive integer or None; got {reference!r}")
        if self.budget is not None and self.budget_bytes is not None:
            raise ValueError("give a memory budget as budget (percent) or budget_bytes, not both")
        percent_bad = self.budget is not None and not self.budget > 0
        if percent_bad or (self.budget_bytes is not None and self.budget_bytes < 1):
            raise ValueError("a memory budget must be positive")
        if self.budget_counts not in ("stored", "served"):
            raise ValueError(f"budget_counts must be 'stored' or 'served'; got {self.budget_counts!r}")
        if not _is_int(self.budget_entities_per_row):
            raise ValueError(f"budget_entities_per_row must be an integer; got {self.budget_entities_per_row!r}")
        if self.budget_entities_per_row < 0:
            raise ValueError(f"budget_entities_per_row must be 0 (no cap) or more; got {self.budget_entities_per_row}")


@dataclass
class ExportConfig(ConfigGroup):
    """What the artifact stores and serves (c2f/trainer/export.py, docs/serving.md): the compressed serving form,
    its product-quantized part (c2f/trainer/quantize.py, refine.py) and the stored dtype.

    Attributes:
        served_fit: how the compressed serving form is fitted to the propagated embeddings: "weights", "codebook" or
            "reassign".
        served_terms: (index, weight) terms per entity of the compressed serving form, between 1 and m_c; None: t_c.
            More terms serve closer to the exact mode for N·(index + weight) more bytes each; other than t_c needs
            served_fit="reassign" (terms picked by matching pursuit).
        pq_subspaces: a product-quantized part of the served vectors: pq_subspaces uint8 codes an entity plus
            pq_subspaces × 256 × d/pq_subspaces codebook values (a divisor of dim; 0: none). Methods with the sparse
            form quantize what it leaves (H_full − S·H_meta); the others (ud, hash, qr) their whole propagated
            vectors, which gives them a compressed serving mode (docs/budgets.md).
        pq_item_norms: with codes, store each item's scale (n_items values) that gives its served vector the norm of
            its exact one. None: on where the codes are the whole served form (ud, hash, qr), off on the sparse form
            (legcf, c2f), where it did not help (docs/budgets.md).
        pq_refine_epochs: with codes, at most this many epochs of BPR training of the codebooks (and item scales) on
            the served scores after k-means, the codes fixed; early stopping keeps k-means' codebooks unless training
            beats them. 0: k-means' as they are. On: it closes most of what k-means loses
            (docs/benchmarks-history.md, "Training the served codes").
        pq_refine_lr: Adam learning rate of that training.
        store_dtype: stored type of the embedding arrays (weights, codebooks, tables), computed in float32
            everywhere; indices take the smallest unsigned type that holds their bound (c2f/contract/dtypes.py).
            float16: it served the same Recall@20 as float32 (docs/benchmarks-history.md, "Served terms and stored
            dtypes").
        served_users: what compressed serving holds for users: "stored", each user's row of the served form;
            "fold_in", none: a user is served the vector folded in from its training items (c2f/contract/foldin.py,
            least squares then a d × d map fitted at export on the trained users and stored), as a new visitor is,
            so the bytes go to the items alone (a budget counting "served" sizes the items' form). Needs a stored
            compressed form (ud, legcf, c2f; hash and qr with pq_subspaces).
    """

    served_fit: Literal["weights", "codebook", "reassign"] = "reassign"
    served_terms: int | None = None
    pq_subspaces: int = 0
    pq_item_norms: bool | None = None
    pq_refine_epochs: int = 60
    pq_refine_lr: float = 1e-3
    store_dtype: StoreDtype = "float16"
    served_users: Literal["stored", "fold_in"] = "stored"

    def check(self) -> None:
        if self.served_users not in ("stored", "fold_in"):
            raise ValueError(f"served_users must be 'stored' or 'fold_in'; got {self.served_users!r}")
        if self.store_dtype not in STORE_DTYPES:
            raise ValueError(f"store_dtype must be one of {', '.join(STORE_DTYPES)}; got {self.store_dtype!r}")
        if self.served_terms is not None and not _is_int(self.served_terms):
            raise ValueError(f"served_terms must be an integer or None; got {self.served_terms!r}")
        if not _is_int(self.pq_subspaces) or self.pq_subspaces < 0:
            raise ValueError(f"pq_subspaces must be 0 (none) or a positive integer; got {self.pq_subspaces!r}")
        refine = self.pq_refine_epochs
        if not _is_int(refine) or refine < 0:
            raise ValueError(f"pq_refine_epochs must be a non-negative integer; got {refine!r}")
        if not (isinstance(self.pq_refine_lr, int | float) and self.pq_refine_lr > 0):
            raise ValueError(f"pq_refine_lr must be a positive number; got {self.pq_refine_lr!r}")
        if self.pq_item_norms is not None and not isinstance(self.pq_item_norms, bool):
            raise ValueError(f"pq_item_norms must be true, false or null (automatic); got {self.pq_item_norms!r}")


GROUPS: tuple[type[ConfigGroup], ...] = (
    ModelConfig,
    OptimConfig,
    EvalConfig,
    CoarseConfig,
    FineConfig,
    BaselineConfig,
    BudgetConfig,
    ExportConfig,
)
"""The groups in reading order: the order of TrainConfig's fields, of docs/configuration.md and of the checks."""

G = TypeVar("G", bound=ConfigGroup)


# A dataclass collects its bases' fields from the last base to the first: the bases are GROUPS in reverse.
@dataclass
class TrainConfig(
    ExportConfig, BudgetConfig, BaselineConfig, FineConfig, CoarseConfig, EvalConfig, OptimConfig, ModelConfig
):
    """Hyper-parameters of one training run: every group's fields, flat (the module's docstring says why).

    Attributes:
        extra: free-form values for experiments (never taken from the network).
    """

    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Every check, not only one group's: :meth:`validate` (run on construction, ``ConfigGroup.__post_init__``)."""
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for a bad value: each group's checks, in :data:`GROUPS` order, then those across
        groups. Every path that builds a config runs it (the CLI, the Python API, the worker, the HTTP model)."""
        for group in GROUPS:
            group.check(self)
        if self.served_terms is not None:
            if not 1 <= self.served_terms <= self.m_c:
                raise ValueError(f"served_terms must be between 1 and m_c ({self.m_c}); got {self.served_terms}")
            if self.served_terms != self.t_c and self.served_fit != "reassign":
                raise ValueError(
                    f"served_terms ({self.served_terms}) other than t_c ({self.t_c}) needs served_fit='reassign' "
                    f"(the {self.served_fit!r} fit keeps the trained t_c indices); got served_fit={self.served_fit!r}"
                )
        if self.pq_subspaces and self.dim % self.pq_subspaces:
            raise ValueError(f"pq_subspaces ({self.pq_subspaces}) must divide dim ({self.dim})")
        if self.served_users == "fold_in" and get_spec(self.method).exact_only and not self.pq_subspaces:
            raise ValueError(
                f"served_users='fold_in' needs a stored compressed form; {self.method} without pq_subspaces is served "
                "from the table it rebuilds at load"
            )

    def to_dict(self) -> dict[str, Any]:
        """The flat dict of every field (the manifest's ``config``; :meth:`from_dict` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from flat ``values``: without a ``method``, :data:`DEFAULT_RECIPE` under them (the product's
        default); then the protocol preset named by ``values["protocol"]`` fills the fields still not given."""
        if values.get("method") is None:
            given = {k: v for k, v in values.items() if k != "method"}
            values = {**DEFAULT_RECIPE, **given}
            if "pq_subspaces" not in given and _is_int(values["dim"]) and values["dim"] > 0:
                # codes must split d evenly: at another d the most subspaces up to the recipe's that divide it
                values["pq_subspaces"] = math.gcd(int(DEFAULT_RECIPE["pq_subspaces"]), values["dim"])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}")
        protocol = values.get("protocol", "ours")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
        return cls(**{**PROTOCOLS[protocol], **values})

    @classmethod
    def from_groups(cls, *groups: ConfigGroup, extra: dict[str, Any] | None = None) -> TrainConfig:
        """A config from group instances, each at most once; a group not given has its defaults (as the
        constructor, no protocol preset is applied)."""
        kinds = [type(group) for group in groups]
        if any(kind not in GROUPS for kind in kinds) or len(set(kinds)) < len(kinds):
            raise ValueError(f"give each of {', '.join(g.__name__ for g in GROUPS)} at most once; got {kinds}")
        values = {f.name: getattr(group, f.name) for group in groups for f in dataclasses.fields(group)}
        return cls(**values, extra=dict(extra or {}))

    def group(self, kind: type[G]) -> G:
        """This config's values of one group, as that group's dataclass."""
        return kind(**{f.name: getattr(self, f.name) for f in dataclasses.fields(kind)})

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

    def patience_for(self, stage: str) -> int:
        """Patience (in evaluations) of a stage: "coarse" (and "ud"), or "fine" (the fine stage, continuation)."""
        own = self.patience_fine if stage == "fine" else self.patience_coarse
        return self.patience if own is None else own
