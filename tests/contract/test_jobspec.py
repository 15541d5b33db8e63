"""The HTTP training parameters are derived from TrainConfig: a new field is accepted with sensible bounds."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
from pydantic import ValidationError

from c2f.contract.config import TrainConfig
from c2f.contract.jobspec import PARAM_BOUNDS, TrainParams, train_params_model


@dataclasses.dataclass
class ExtendedConfig(TrainConfig):
    """TrainConfig as another change might extend it: fields with defaults and no entry in PARAM_BOUNDS."""

    patience_fine: int = 7
    bias_scale: float = 0.5
    flavour: Literal["paper", "released"] = "paper"
    use_bias: bool = False
    note: str | None = None


def test_a_new_field_is_accepted_with_its_default_and_default_bounds() -> None:
    params = train_params_model(ExtendedConfig)
    assert params.model_validate({}).model_dump()["patience_fine"] == 7
    ok = params.model_validate({"patience_fine": 3, "bias_scale": 2.0, "flavour": "released", "use_bias": True})
    assert ok.model_dump(exclude_unset=True) == {
        "patience_fine": 3,
        "bias_scale": 2.0,
        "flavour": "released",
        "use_bias": True,
    }
    for bad in (
        {"patience_fine": -1},  # numbers default to [0, 1e9]
        {"patience_fine": 10**10},
        {"bias_scale": float("inf")},
        {"patience_fine": "3"},  # strict: no string-to-number coercion
        {"flavour": "other"},
        {"note": "../../etc/passwd"},  # strings default to a short token, never a path
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            params.model_validate(bad)


def test_every_bound_names_a_field_and_the_defaults_pass() -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(PARAM_BOUNDS) <= names
    payload = {k: v for k, v in TrainConfig().to_dict().items() if k not in ("method", "extra")}
    assert TrainParams.model_validate(payload).model_dump() == payload
    with pytest.raises(ValidationError, match="t_c"):
        TrainParams.model_validate({"m_c": 4, "t_c": 5})
