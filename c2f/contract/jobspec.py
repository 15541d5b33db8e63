"""The job contract between the service (which enqueues) and the worker (which runs): the job function's dotted
path, its keyword arguments, the HTTP schema of the training parameters, progress stages and the cancel flag.

The HTTP schema :class:`TrainParams` is derived from :class:`contract.config.TrainConfig` field by field (type,
default, :data:`PARAM_BOUNDS`), so a new TrainConfig field is accepted by ``POST /train`` without
further changes. Only the keys a client sends are passed on; TrainConfig's defaults fill the rest. The checks of the
values (each field's and those across fields) are TrainConfig's own: the model builds the config from what was sent,
as the worker will. :data:`PARAM_BOUNDS` adds the ranges a network request must keep within (sizes, rates; strings
are short tokens, never paths).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from c2f.contract.config import TrainConfig
from c2f.contract.methods import COARSE_METHODS

JOB_FUNC = "c2f.jobs.train.train_job"
"""The RQ job function, enqueued by dotted path (the service never imports it): kwargs ``dataset_uri``,
``method``, ``params`` (TrainConfig fields the client set) and ``artifact_root``."""
STAGES = ("loading", "coarse", "fine", "export")
API_STATUSES = ("queued", "started", "finished", "failed", "canceled")
CANCEL_KEY = "c2f:cancel:{job_id}"
"""Redis key set by a cancel request; the job's progress callback checks it (backup for RQ's stop command)."""


@dataclass(frozen=True)
class Bounds:
    """Limits on one parameter as the network may set it (pydantic ``Field`` constraints; None: no limit)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    pattern: str | None = None
    description: str | None = None


DEFAULT_NUMBER_BOUNDS = Bounds(ge=0, le=1_000_000_000)
"""For a numeric field without an entry below: non-negative and at most 1e9 (and finite)."""
DEFAULT_STR_BOUNDS = Bounds(pattern=r"^[A-Za-z0-9_.:+-]{0,64}$")
"""For a string field without an entry below: a short token, never a path."""

PARAM_BOUNDS: dict[str, Bounds] = {
    "dim": Bounds(ge=1, le=4096),
    "layers": Bounds(ge=0, le=10),
    "epochs": Bounds(ge=1, le=100_000),
    "batch_size": Bounds(ge=1, le=1 << 22),
    "negatives": Bounds(ge=1, le=1000),
    "lr": Bounds(gt=0, le=10),
    "lr_fine": Bounds(gt=0, le=10),
    "reg": Bounds(ge=0, le=10),
    "eval_every": Bounds(ge=1, le=10_000),
    "patience": Bounds(ge=0, le=10_000),
    "m_c": Bounds(ge=1, le=10_000_000),
    "t_c": Bounds(ge=1, le=1024),
    "served_terms": Bounds(ge=1, le=1024),
    "pq_subspaces": Bounds(ge=0, le=4096),
    "w_star": Bounds(gt=0, le=1),
    "f_c": Bounds(ge=1, le=10_000),
    "m_r": Bounds(ge=1, le=10_000_000),
    "t_r": Bounds(ge=1, le=1024),
    "d_r": Bounds(ge=1, le=4096),
    "w_cr": Bounds(ge=0, le=1),
    "soft_lambda": Bounds(ge=0),
    "target_nonzero": Bounds(gt=0, le=1),
    "f_r": Bounds(ge=1, le=10_000),
    "coarse_from": Bounds(
        pattern=rf"^[0-9]{{8}}T[0-9]{{12}}Z-({'|'.join(COARSE_METHODS)})$",
        description="c2f only: reuse the coarse stage of this published legcf/c2f version (a version name in the "
        "service's artifact root, never a path)",
    ),
    "hash_buckets": Bounds(ge=0, le=1_000_000_000),
    "qr_buckets": Bounds(ge=0, le=1_000_000_000),
    "budget": Bounds(
        gt=0,
        le=1_000_000,
        description="Memory budget in percent of the float32 full table N·d·4 "
        "(2.0 = 2%): sets the method's size to the largest that fits (c2f/contract/budget.py).",
    ),
    "budget_bytes": Bounds(
        ge=1, le=2**50, description="Memory budget in bytes of the published embedding arrays (instead of budget)."
    ),
    "budget_entities_per_row": Bounds(
        ge=0,
        le=1_000_000_000,
        description="legcf/c2f under a budget: at most N // this many codebook rows (0: no cap).",
    ),
    "time_limit": Bounds(
        gt=0,
        le=30 * 86_400,
        description="Seconds of training after which the run stops its phases and publishes what it kept.",
    ),
    "valid_fraction": Bounds(ge=0, lt=1),
    "seed": Bounds(ge=0, le=2**32 - 1),
    "device": Bounds(pattern=r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"),
}
"""Bounds of the parameters over HTTP, by field name (fields not listed get the defaults above)."""

HTTP_EXCLUDED = ("method", "extra")
"""TrainConfig fields that are not HTTP parameters: ``method`` is a top-level request field, ``extra`` a free-form
escape hatch not taken from the network."""


def _bounds_for(name: str, annotation: Any) -> Bounds:
    if name in PARAM_BOUNDS:
        return PARAM_BOUNDS[name]
    args = set(typing.get_args(annotation)) if typing.get_origin(annotation) in (Union, types.UnionType) else set()
    kinds = (args - {type(None)}) or {annotation}
    if kinds & {int, float} and bool not in kinds:
        return DEFAULT_NUMBER_BOUNDS
    if str in kinds:
        return DEFAULT_STR_BOUNDS
    return Bounds()


def _field(name: str, annotation: Any, default: Any) -> tuple[Any, Any]:
    bounds = _bounds_for(name, annotation)
    constraints = {k: v for k, v in dataclasses.asdict(bounds).items() if v is not None}
    if annotation is float or (set(typing.get_args(annotation)) & {float}):
        constraints.setdefault("allow_inf_nan", False)
    return annotation, Field(default, **constraints)


class _TrainParamsBase(BaseModel):
    """Strict (no string-to-number coercion) and no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _built_by(config_cls: type[TrainConfig]) -> Any:
    """The model validator that checks the values the client sent by building ``config_cls`` from them (its
    :meth:`~contract.config.TrainConfig.validate`; a ValueError becomes the 422's message)."""

    def consistent(params: BaseModel) -> BaseModel:
        config_cls.from_dict(params.model_dump(exclude_unset=True))
        return params

    return model_validator(mode="after")(consistent)


def train_params_model(config_cls: type[TrainConfig] = TrainConfig) -> type[BaseModel]:
    """A strict pydantic model of every field of ``config_cls`` (TrainConfig) except
    :data:`HTTP_EXCLUDED`, with the dataclass's defaults and the bounds of
    :data:`PARAM_BOUNDS` (or the default bounds), validated by building ``config_cls``."""
    hints = typing.get_type_hints(config_cls)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if f.name in HTTP_EXCLUDED:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"TrainConfig.{f.name} has no default: every training parameter needs one")
        fields[f.name] = _field(f.name, hints[f.name], default)
    return create_model(
        "TrainParams",
        __base__=_TrainParamsBase,
        __validators__={"_consistent": _built_by(config_cls)},
        __doc__="Training hyper-parameters accepted over HTTP: TrainConfig's fields (minus method and extra).",
        **fields,
    )


TrainParams = train_params_model()
