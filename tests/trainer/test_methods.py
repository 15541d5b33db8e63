"""The trainer's registry (c2f/trainer/methods.py) matches the contract's: one trainer per MethodSpec, same names."""

from __future__ import annotations

import pytest

from c2f.contract.methods import REGISTRY, MethodError
from c2f.trainer.methods import TRAINERS, MethodTrainer, get_trainer, register


def test_every_spec_has_a_trainer_and_every_trainer_a_spec() -> None:
    assert sorted(TRAINERS) == sorted(REGISTRY)
    for name, method in TRAINERS.items():
        assert method.name == name
        assert get_trainer(name) is method


def test_unknown_and_duplicate_names_are_refused() -> None:
    with pytest.raises(MethodError, match="unknown method"):
        get_trainer("nope")

    class Unknown(MethodTrainer):
        name = "nope"

    class Twice(MethodTrainer):
        name = "ud"

    with pytest.raises(MethodError, match="unknown method"):
        register(Unknown)
    with pytest.raises(ValueError, match="two trainers"):
        register(Twice)
    assert type(TRAINERS["ud"]).__name__ == "UDTrainer"
