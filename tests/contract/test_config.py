"""TrainConfig: groups by concern composed into one flat config, one place for its checks, and the training
parameters' tables in docs/configuration.md (generated from the groups: ``python3 tests/contract/test_config.py``)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from c2f.cli.main import app
from c2f.contract.config import (
    GROUPS,
    PROTOCOLS,
    BudgetConfig,
    CoarseConfig,
    ExportConfig,
    FineConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from c2f.contract.jobspec import TrainParams

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
TABLES_START = "<!-- train-params:start (generated: python3 tests/contract/test_config.py) -->"
TABLES_END = "<!-- train-params:end -->"


# ---------------------------------------------------------------------------------------------------------------
# groups and flat keys
# ---------------------------------------------------------------------------------------------------------------
def test_the_groups_partition_the_flat_fields_in_reading_order() -> None:
    grouped = [f.name for group in GROUPS for f in dataclasses.fields(group)]
    assert grouped + ["extra"] == [f.name for f in dataclasses.fields(TrainConfig)]
    assert len(set(grouped)) == len(grouped) == 66  # and extra, TrainConfig's own
    assert not {"model", "optim", "eval", "coarse", "fine", "baselines", "export"} & set(grouped)


def test_flat_and_grouped_construction_give_equal_configs() -> None:
    flat = {"method": "legcf", "dim": 32, "lr": 5e-3, "m_c": 64, "t_c": 3, "m_r": 8, "budget": 2.0, "pq_subspaces": 8}
    grouped = TrainConfig.from_groups(
        ModelConfig(method="legcf", dim=32),
        OptimConfig(lr=5e-3),
        CoarseConfig(m_c=64, t_c=3),
        FineConfig(m_r=8),
        BudgetConfig(budget=2.0),
        ExportConfig(pq_subspaces=8),
    )
    assert grouped == TrainConfig(**flat) == TrainConfig.from_dict(flat)  # type: ignore[arg-type]
    assert grouped.group(CoarseConfig) == CoarseConfig(m_c=64, t_c=3)
    assert TrainConfig.from_groups(*(grouped.group(g) for g in GROUPS)) == grouped
    assert TrainConfig.from_groups() == TrainConfig()
    with pytest.raises(ValueError, match="at most once"):
        TrainConfig.from_groups(CoarseConfig(), CoarseConfig(m_c=5))


def test_the_manifest_form_stays_flat_and_reads_back() -> None:
    config = TrainConfig.from_dict({"method": "c2f", "protocol": "released", "served_terms": 3})
    stored = json.loads(json.dumps(config.to_dict()))  # as the manifest holds it
    assert set(stored) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert not any(isinstance(value, dict) for key, value in stored.items() if key != "extra")
    assert TrainConfig.from_dict(stored) == config


def test_presets_name_flat_fields() -> None:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for preset in PROTOCOLS.values():
        assert set(preset) <= names


@pytest.mark.parametrize("key", ["bogus", "fine", "coarse"])  # a group's name is not a key
def test_an_unknown_key_is_refused_as_before(key: str) -> None:
    with pytest.raises(ValueError, match=f"^unknown training parameters: {key}$"):
        TrainConfig.from_dict({key: 1, "lr": 0.1})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainParams.model_validate({key: 1})


# ---------------------------------------------------------------------------------------------------------------
# one place for the checks: every path refuses the same values with the same message
# ---------------------------------------------------------------------------------------------------------------
CROSS_FIELD = [
    ({"m_c": 4, "t_c": 5}, "t_c (5) must not exceed m_c (4)"),
    ({"m_r": 3, "t_r": 4}, "t_r (4) must not exceed m_r (3)"),
    ({"m_c": 20, "served_terms": 30}, "served_terms must be between 1 and m_c (20); got 30"),
    ({"served_terms": 4, "served_fit": "codebook"}, "served_terms (4) other than t_c (2) needs served_fit='reassign'"),
    ({"dim": 64, "pq_subspaces": 3}, "pq_subspaces (3) must divide dim (64)"),
    ({"budget": 2.0, "budget_bytes": 1000}, "give a memory budget as budget (percent) or budget_bytes, not both"),
]


@pytest.mark.parametrize(("values", "message"), CROSS_FIELD)
def test_a_cross_field_check_fires_from_the_config(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(values)
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**values)


@pytest.mark.parametrize(("values", "message"), CROSS_FIELD)
def test_a_cross_field_check_fires_from_the_cli(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    args = [item for key, value in values.items() for item in ("-p", f"{key}={json.dumps(value)}")]
    outcome = CliRunner().invoke(app, ["train", str(tmp_path / "no-data"), "--out", str(tmp_path / "out"), *args])
    assert outcome.exit_code == 2, outcome.output
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", outcome.output).split())  # the error box wraps long lines
    assert message in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("values", "message"), CROSS_FIELD)
def test_a_cross_field_check_fires_from_the_http_model(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        TrainParams.model_validate(values)


def test_a_group_checks_its_fields_when_built_alone() -> None:
    with pytest.raises(ValueError, match=re.escape("t_c (5) must not exceed m_c (4)")):
        CoarseConfig(m_c=4, t_c=5)
    with pytest.raises(ValueError, match="not both"):
        BudgetConfig(budget=1.0, budget_bytes=10)
    with pytest.raises(ValueError, match="unknown method"):
        ModelConfig(method="svd")
    ExportConfig(served_terms=500)  # against m_c: a check across groups, TrainConfig's
    with pytest.raises(ValueError, match=r"between 1 and m_c \(300\); got 500"):
        TrainConfig(served_terms=500)


def test_validate_checks_a_changed_config() -> None:
    config = TrainConfig()
    config.t_c = 400
    with pytest.raises(ValueError, match=re.escape("t_c (400) must not exceed m_c (300)")):
        config.validate()
    with pytest.raises(ValueError, match=re.escape("t_c (400) must not exceed m_c (300)")):
        config.check()  # every check, not only the first group's


# ---------------------------------------------------------------------------------------------------------------
# docs/configuration.md: every field documented in its group, and the tables generated from them
# ---------------------------------------------------------------------------------------------------------------
def attributes(cls: type) -> dict[str, str]:
    """The ``Attributes:`` section of a group's docstring: field name -> its text (continuation lines joined)."""
    section = inspect.cleandoc(cls.__doc__ or "").split("Attributes:\n", 1)[1]
    entries: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        if match := re.match(r"^    (\w+): (.*)$", line):
            name = match[1]
            entries[name] = match[2]
        elif line.startswith("        ") and name:
            entries[name] += " " + line.strip()
    return entries


def _summary(cls: type) -> str:
    return " ".join(inspect.cleandoc(cls.__doc__ or "").split("\n\n", 1)[0].split())


def tables() -> str:
    blocks = []
    for group in GROUPS:
        rows = [f"**`{group.__name__}`**: {_summary(group)}", "", "| Key | Default | Meaning |", "| --- | --- | --- |"]
        docs = attributes(group)
        for f in dataclasses.fields(group):
            meaning = docs[f.name].replace("|", "\\|")
            rows.append(f"| `{f.name}` | `{json.dumps(f.default)}` | {meaning} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def test_every_field_is_documented_in_its_group() -> None:
    for group in GROUPS:
        assert list(attributes(group)) == [f.name for f in dataclasses.fields(group)], group.__name__
    assert list(attributes(TrainConfig)) == ["extra"]


def test_the_configuration_doc_shows_the_groups() -> None:
    doc = DOC.read_text()
    assert TABLES_START in doc and TABLES_END in doc
    documented = doc.split(TABLES_START, 1)[1].split(TABLES_END, 1)[0].strip()
    assert documented == tables(), "docs/configuration.md is out of date: run `python3 tests/contract/test_config.py`"


if __name__ == "__main__":  # rewrite docs/configuration.md's training parameter tables from c2f/contract/config.py
    text = DOC.read_text()
    head, rest = text.split(TABLES_START, 1)
    _, tail = rest.split(TABLES_END, 1)
    DOC.write_text(f"{head}{TABLES_START}\n{tables()}\n{TABLES_END}{tail}")
    print(f"updated the training parameter tables in {DOC}")


def test_no_method_means_the_default_recipe() -> None:
    """`c2f train DATA`, `c2f.train(data)` and `POST /train` without a method build DEFAULT_RECIPE under what they
    were given; naming a method, even the recipe's own, starts from TrainConfig's defaults."""
    from c2f.contract.config import DEFAULT_RECIPE

    recipe = TrainConfig.from_dict({})
    assert {key: getattr(recipe, key) for key in DEFAULT_RECIPE} == DEFAULT_RECIPE
    assert TrainConfig.from_dict({"method": None, "seed": 3}) == dataclasses.replace(recipe, seed=3)
    assert TrainConfig.from_dict({"method": "ud"}) == TrainConfig(method="ud")  # no recipe: dim 128, no codes
    assert TrainConfig.from_dict({"method": "c2f"}) == TrainConfig()
    # another d: the most codes up to the recipe's 16 that split it evenly; codes given are kept (and checked)
    assert TrainConfig.from_dict({"dim": 8}).pq_subspaces == 8
    assert TrainConfig.from_dict({"dim": 96}).pq_subspaces == 16
    assert TrainConfig.from_dict({"dim": 64, "pq_subspaces": 4}).pq_subspaces == 4
    with pytest.raises(ValueError, match=r"pq_subspaces \(5\) must divide dim \(64\)"):
        TrainConfig.from_dict({"pq_subspaces": 5})
