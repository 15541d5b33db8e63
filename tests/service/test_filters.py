"""c2f/service/filters.py: where= parsing, the ItemFilter's two ways of serving a request, a request's selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import load_artifact, version_path
from c2f.contract.attributes import encode_attributes
from c2f.service.errors import ApiError
from c2f.service.filters import MATERIALIZE, ItemFilter, WhereSyntaxError, parse_where, select_items
from c2f.service.scoring import Recommender
from tests.fixtures import build_artifact, make_arrays, make_manifest


def test_parse_where() -> None:
    assert parse_where(None, 5) == []
    assert parse_where(["genre:jazz|blues", " country : fr ", "genre:jazz"], 5) == [
        ("genre", ("jazz", "blues")),
        ("country", ("fr",)),
        ("genre", ("jazz",)),
    ]
    assert parse_where(["time:12:30"], 5) == [("time", ("12:30",))]  # a value may hold ':'
    assert parse_where(["genre:jazz|jazz"], 1) == [("genre", ("jazz",))]  # repeated values count once


@pytest.mark.parametrize("clause", ["genre", ":jazz", "genre:", "genre:jazz|", "genre:|rock", "  :  "])
def test_malformed_where(clause: str) -> None:
    with pytest.raises(WhereSyntaxError, match="column:value"):
        parse_where([clause], 5)


def test_where_values_are_bounded() -> None:
    with pytest.raises(WhereSyntaxError, match="at most 3 values"):
        parse_where(["a:1|2", "b:3|4"], 3)


def test_item_filter_lists_few_candidates_and_masks_many() -> None:
    n = 80
    none = ItemFilter.build(n)
    assert none.candidates is None and none.keep is None and none.blocked.size == 0
    blocked = ItemFilter.build(n, exclude=[5, 5, -1, 99], hidden=np.array([7, 5]))  # hidden unsorted: sorted here
    assert blocked.blocked.tolist() == [5, 7] and blocked.keep is None and blocked.candidates is None
    scores = np.arange(n, dtype=np.float32)
    assert np.isneginf(blocked.apply(scores.copy())[[5, 7]]).all()
    hidden = np.array([2, 9])
    assert ItemFilter.build(n, hidden=hidden).blocked is hidden  # as promised: used as it is

    few = ItemFilter.build(n, allow=[1, 2, 3, 7, 200], hidden=np.array([7]))
    assert few.candidates is not None and few.candidates.tolist() == [1, 2, 3]
    row = few.apply(scores.copy())
    assert np.flatnonzero(np.isfinite(row)).tolist() == [1, 2, 3]

    mask = np.zeros(n, dtype=bool)
    mask[: n // 2 + 1] = True  # more than 1/MATERIALIZE of the items: kept as a mask
    many = ItemFilter.build(n, mask=mask)
    assert many.candidates is None and many.keep is not None and many.keep.sum() == n // 2 + 1
    fewer = ItemFilter.build(n, mask=mask, exclude=[0, 1])  # now n/2 - 1: listed
    assert fewer.candidates is not None and fewer.candidates.tolist() == list(range(2, n // 2 + 1))
    assert np.flatnonzero(np.isfinite(many.apply(scores.copy()))).tolist() == list(range(n // 2 + 1))
    assert np.flatnonzero(fewer.answerable()).tolist() == fewer.candidates.tolist()
    small = np.zeros(n, dtype=bool)
    small[: n // MATERIALIZE] = True
    assert ItemFilter.build(n, mask=small).candidates is not None
    both = ItemFilter.build(n, mask=mask, allow=[0, 1, 70])
    assert both.candidates is not None and both.candidates.tolist() == [0, 1]
    assert ItemFilter.build(n, allow=[]).candidates is not None  # an empty allow-list allows nothing


@pytest.fixture
def rec(artifact_root: Path) -> Recommender:
    arrays = make_arrays("legcf", n_users=4, n_items=12, d=4)
    genre = np.array(["jazz" if i % 3 == 0 else "rock" for i in range(12)])
    arrays.update(encode_attributes(arrays["item_ids"], arrays["item_ids"], {"genre": genre}))
    version = build_artifact(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))
    return Recommender(load_artifact(version_path(artifact_root, version)))


def _select(rec: Recommender, **kwargs: object) -> object:
    bounds = {"max_exclude": 4, "max_candidates": 4, "max_where": 2}
    return select_items(rec, np.array([3], dtype=np.int64), **{**bounds, **kwargs})  # type: ignore[arg-type]


def test_select_items(rec: Recommender) -> None:
    chosen = _select(rec, exclude=["i1,nope"], items=["i0,i3", "i6,zz"], where=["genre:jazz"])
    assert chosen.ignored_exclude == ["nope"] and chosen.ignored_items == ["zz"]  # type: ignore[attr-defined]
    assert np.flatnonzero(chosen.filter.answerable()).tolist() == [0, 6]  # type: ignore[attr-defined]  i3 hidden
    everything = _select(rec)
    assert np.flatnonzero(~everything.filter.answerable()).tolist() == [3]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"items": ["a,b,c,d,e"]}, "validation_error", "at most 4 ids in items"),
        ({"exclude": ["a", "b", "c", "d", "e"]}, "validation_error", "at most 4 ids in exclude"),
        ({"where": ["genre"]}, "validation_error", "column:value"),
        ({"where": ["genre:a|b|c"]}, "validation_error", "at most 2 values"),
        ({"where": ["colour:red"]}, "unknown_attribute", "this model has: genre"),
    ],
)
def test_select_items_refuses(rec: Recommender, kwargs: dict[str, object], code: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        _select(rec, **kwargs)
    assert err.value.status_code == 422 and err.value.code == code and message in err.value.message
    if code == "unknown_attribute":
        assert err.value.details == {"available": ["genre"]}


def test_where_on_a_model_without_attributes(artifact_root: Path) -> None:
    plain = Recommender(load_artifact(version_path(artifact_root, build_artifact(artifact_root, "legcf"))))
    with pytest.raises(ApiError) as err:
        _select(plain, where=["genre:jazz"])
    assert err.value.status_code == 422 and err.value.code == "no_item_attributes"
    assert "no item attributes" in err.value.message
