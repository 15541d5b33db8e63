"""Training configuration: one dataclass, every field a tunable with the paper's (or the released code's) default.

This is the one definition of the training parameters: ``c2f train -p key=value`` builds it with
:meth:`TrainConfig.from_dict`, and the HTTP schema of ``POST /train`` is derived from it
(:func:`contract.jobspec.train_params_model`) with the bounds in :data:`contract.jobspec.PARAM_BOUNDS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from contract.methods import get_spec


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
    # early stopping on validation NDCG@20
    eval_every: int = 1
    patience: int = 5
    # coarse stage
    m_c: int = 300
    t_c: int = 2
    w_star: float = 0.9
    f_c: int = 1
    raw_assignment: bool = False  # True: Eq. 11's projected values as weights (paper); False: rows sum to 1
    # fine stage
    m_r: int = 100
    t_r: int = 5
    d_r: int = 80
    w_cr: float = 0.5
    soft_lambda: float | None = None
    target_nonzero: float = 0.5
    f_r: int = 1
    fine_rows: Literal["most_used", "random"] = "most_used"
    fine_init: Literal["codes", "reconstruction"] = "codes"  # E^r from SparsePCA codes (paper) or U·V
    # c2f only: reuse the coarse stage (E_c, S_c) of a published legcf/c2f version directory instead of training it
    coarse_from: str | None = None
    # ablations (paper Fig. 4): A random E^r init, B no SparsePCA, C no soft thresholding, D codebook-only S^r
    ablation: Literal["none", "A", "B", "C", "D"] = "none"
    # data
    valid_fraction: float = 0.1
    valid_from: Literal["train", "test"] = "train"
    seed: int = 2024
    device: str = "auto"
    # export
    # how the compressed serving form is fitted to the propagated embeddings (trainer/export.py)
    served_fit: Literal["weights", "codebook", "reassign"] = "reassign"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_spec(self.method)  # a clear error for an unknown method (MethodError is a ValueError)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training parameters: {', '.join(unknown)}")
        return cls(**values)
