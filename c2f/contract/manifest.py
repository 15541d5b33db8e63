"""The typed manifest of a model version (``manifest.json``) and its footprint report, as pydantic models.

The trainer's exporter builds a :class:`Manifest`; :func:`contract.artifact.publish` completes it (version,
timestamps, footprint, file checksums) and :func:`contract.artifact.load_artifact` validates it on load. Every model
accepts unknown keys (``extra="allow"``) and every field added after the first format has a default, so manifests
written by earlier versions of the code still load (``tests/contract/test_manifest.py`` keeps one).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FineForwardName = Literal["paper", "released"]
"""A fine stage's forward as published (``TrainConfig.fine_forward`` with "auto" resolved at training)."""

MetricValues = dict[str, Any]
"""``{"recall@20": 0.19, "ndcg@20": 0.16, ..., "n_users": 29858}`` (floats; counts are ints). Sampled evaluations
add ``"recall@20_se"`` etc. (standard errors) and ``"n_eligible"``."""


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class Shape(_Open):
    """Sizes of the model: users, items, entities (N), embedding size d, propagation layers and the method's
    hyper-parameters (m_c, t_c coarse; m_r, t_r fine; 0 when the method has no such level)."""

    n_users: int | None = None
    n_items: int | None = None
    n_entities: int | None = None
    d: int | None = None
    layers: int | None = None
    m_c: int | None = None
    t_c: int | None = None
    m_r: int | None = None
    t_r: int | None = None


class DatasetInfo(_Open):
    uri: str | None = None
    content_hash: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict)


class SplitMetrics(_Open):
    """Metrics of one model variant on the test split (and, for the trained model, validation)."""

    test: MetricValues | None = None


class TrainedMetrics(SplitMetrics):
    valid: MetricValues | None = None
    coarse_test: MetricValues | None = None  # c2f: the coarse stage alone


class EvaluationSample(_Open):
    """Which users a split's metrics were computed on: ``users`` of the ``eligible`` users with truth items, drawn
    with ``seed`` (all of them when ``users == eligible``); ``requested`` is the configured size (0: all)."""

    users: int
    eligible: int
    requested: int = 0
    seed: int | None = None


class ModelMetrics(_Open):
    """``trained`` (full propagation, the trainer's evaluation), ``served`` per serving mode (what the service
    computes), the per-epoch ``history``, ``timings`` in seconds and ``evaluation``: the user samples the
    ``valid`` and ``test`` figures were computed on (absent in artifacts written before sampling existed, whose
    figures are over all users)."""

    trained: TrainedMetrics | None = None
    served: dict[str, SplitMetrics] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    evaluation: dict[str, EvaluationSample] = Field(default_factory=dict)

    def as_reported(self) -> dict[str, Any]:
        """``{"trained": ..., "served": ...}`` as stored (keys absent from the manifest are None)."""
        stored = self.model_dump(include={"trained", "served"}, exclude_unset=True)
        return {"trained": stored.get("trained"), "served": stored.get("served")}

    def test(self, variant: str) -> MetricValues:
        """Test metrics of ``"trained"`` or a serving mode (``"compressed"``, ``"exact"``); {} when absent."""
        split = self.trained if variant == "trained" else self.served.get(variant)
        return dict(split.test or {}) if split is not None else {}


class Footprint(_Open):
    """Sizes of a model (see :func:`contract.footprint.footprint`): bytes per component and per array as stored
    (with each array's stored dtype), paper-convention params and "times smaller than the float32 full table"
    ratios."""

    method: str
    n_users: int
    n_items: int
    n_entities: int
    d: int
    m_c: int = 0
    t_c: int = 0
    m_r: int = 0
    t_r: int = 0
    components: dict[str, int]
    arrays: dict[str, int]
    dtypes: dict[str, str] = Field(default_factory=dict)  # per array as stored: "float16", "uint16", ...
    total_bytes: int
    embedding_bytes: int
    params_paper: int
    params_biases: int = 0  # learned per-item score offsets (not in the paper's convention)
    params_total: int | None = None  # params_paper + params_biases: everything the model learned
    full_table_params: int
    full_table_bytes: int
    compression_ratio_params: float | None
    compression_ratio_bytes: float | None
    e_r_nnz: int = 0
    e_r_density: float | None = None
    params_sparse_E_r: int | None = None
    served_terms: int | None = None  # (index, weight) terms per entity of the compressed serving form
    served_form: str | None = None  # "sparse" (served_terms terms), "pq" (pq_subspaces uint8 codes) or "sparse+pq"
    pq_subspaces: int | None = None
    # "stored": compressed serving holds every user's row; "fold_in": the items' alone, users folded in from their
    # items with the stored map (TrainConfig.served_users)
    served_users: str = "stored"
    compressed_serving_bytes: int | None = None
    compression_ratio_serving_bytes: float | None = None
    # what compressed-mode serving holds to score, every method (c2f/contract/footprint.py serving_memory_bytes):
    # the served form or stored table, hash/qr's rebuilt float32 (N, d) table, item biases; None in old manifests
    serving_memory_bytes: int | None = None


class BudgetReport(_Open):
    """A memory budget a run was sized for (``TrainConfig.budget`` / ``budget_bytes``, see c2f/contract/budget.py):
    the budget in bytes, the knob it set and its value, the planned embedding bytes at that value and at the next
    value up, and the bytes the published arrays actually have (``Footprint.embedding_bytes``, or
    ``Footprint.serving_memory_bytes`` when ``counts`` is "served")."""

    budget_bytes: int
    budget_percent: float | None = None  # when given as a percentage of full_table_bytes
    full_table_bytes: int  # N·d·4 at the requested d (the reference a percentage refers to)
    knob: str
    value: int
    sizes: dict[str, int] = Field(default_factory=dict)  # every TrainConfig size the budget set
    planned_bytes: int
    next_planned_bytes: int | None = None  # at value + 1 (None: value is the largest size tried)
    knob_max: int | None = None  # the largest value tried (legcf/c2f: N // budget_entities_per_row)
    achieved_bytes: int | None = None
    counts: str = "stored"  # TrainConfig.budget_counts: what the bytes count ("stored" or "served")


class FileEntry(_Open):
    bytes: int
    sha256: str


class Manifest(_Open):
    """``manifest.json``. The trainer fills method, dataset, config, shape, w_cr, soft_lambda, metrics and info;
    publishing adds schema_version, model_version, created_at, footprint and files."""

    method: str
    schema_version: int | None = None
    model_version: str | None = None
    created_at: str | None = None
    dataset: DatasetInfo = Field(default_factory=DatasetInfo)
    config: dict[str, Any] = Field(default_factory=dict)
    shape: Shape = Field(default_factory=Shape)
    w_cr: float | None = None
    soft_lambda: float | None = None
    hash_seed: int | None = None  # hash: the seed of the entity -> row hash
    qr_combine: str | None = None  # qr: "mult" or "sum"
    budget: BudgetReport | None = None  # set when the run was sized for a memory budget
    metrics: ModelMetrics = Field(default_factory=ModelMetrics)
    info: dict[str, Any] = Field(default_factory=dict)
    footprint: Footprint | None = None
    files: dict[str, FileEntry] = Field(default_factory=dict)

    @property
    def fine_forward(self) -> FineForwardName:
        """c2f: the forward the fine stage was trained with, the config's ``fine_forward`` ("auto" is resolved
        before publishing); "paper" when the config does not record one (artifacts written before the option).
        Read from the config rather than stored twice, so that manifests keep the fields they have always had.
        ValueError for any other value."""
        forward = self.config.get("fine_forward", "paper")
        if forward == "paper" or forward == "released":
            return forward
        raise ValueError(f"manifest config fine_forward must be 'paper' or 'released', got {forward!r}")

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON object written to ``manifest.json``: the fields that were set, so the file holds what the
        trainer and the publisher wrote and nothing more (values may still hold numpy scalars)."""
        return self.model_dump(mode="python", exclude_unset=True)
