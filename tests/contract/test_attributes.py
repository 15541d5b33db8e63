"""The item attribute table (c2f/contract/attributes.py): encoding, the artifact's checks, masks for where= filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from c2f.contract.artifact import ArtifactError, load_artifact, version_path
from c2f.contract.attributes import ItemAttributes, UnknownAttribute, encode_attributes
from tests.fixtures import build_artifact, make_arrays, make_manifest

ITEMS = np.array([f"i{i}" for i in range(10)])


def genre_table() -> dict[str, np.ndarray]:
    """i0..i9 (i9 missing from the table, i42 not a model item): genre jazz for multiples of 3, else rock (i7: an
    empty cell); country fr for even items, else de."""
    ids = np.array([f"i{i}" for i in range(9)] + ["i42"])
    genre = np.array(["jazz" if i % 3 == 0 else ("" if i == 7 else "rock") for i in range(9)] + ["jazz"])
    country = np.array(["fr" if i % 2 == 0 else "de" for i in range(9)] + ["fr"])
    return encode_attributes(ITEMS, ids, {"genre": genre, "country": country})


def test_encode_round_trips_values_per_item() -> None:
    arrays = genre_table()
    assert arrays["item_attr_names"].tolist() == ["genre", "country"]
    assert arrays["item_attr_codes"].shape == (2, 10) and arrays["item_attr_codes"].dtype == np.uint8
    attrs = ItemAttributes(arrays)
    values = attrs.item_values(np.arange(10))
    assert values["genre"] == ["jazz", "rock", "rock", "jazz", "rock", "rock", "jazz", "", "rock", ""]
    assert values["country"] == ["fr", "de", "fr", "de", "fr", "de", "fr", "de", "fr", ""]
    assert attrs.values("genre").tolist() == ["", "jazz", "rock"]  # sorted, the missing value included
    assert attrs.value_counts() == {"genre": 3, "country": 3}
    assert attrs.nbytes > 0
    assert encode_attributes(ITEMS, ITEMS, {}) == {}  # no column: no arrays


def test_masks_and_or_unknown() -> None:
    attrs = ItemAttributes(genre_table())
    assert np.flatnonzero(attrs.mask([("genre", ("jazz",))])).tolist() == [0, 3, 6]
    assert np.flatnonzero(attrs.mask([("genre", ("jazz", "rock"))])).tolist() == [0, 1, 2, 3, 4, 5, 6, 8]
    both = attrs.mask([("genre", ("jazz",)), ("country", ("fr",))])
    assert np.flatnonzero(both).tolist() == [0, 6]
    assert not attrs.mask([("genre", ("blues",))]).any()  # a value the column does not have matches nothing
    assert attrs.mask([]).all()
    with pytest.raises(UnknownAttribute) as err:
        attrs.mask([("colour", ("red",))])
    assert err.value.available == ["genre", "country"] and "genre, country" in str(err.value)


def test_codes_widen_with_the_number_of_values() -> None:
    ids = np.array([f"i{i}" for i in range(300)])
    arrays = encode_attributes(ids, ids, {"name": ids})
    assert arrays["item_attr_codes"].dtype == np.uint16
    attrs = ItemAttributes(arrays)
    assert np.flatnonzero(attrs.mask([("name", ("i299", "i7"))])).tolist() == [7, 299]


def test_artifact_round_trip_and_checks(artifact_root: Path) -> None:
    arrays = {**make_arrays("legcf", n_items=10), **genre_table()}
    version = build_artifact(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))
    loaded = load_artifact(version_path(artifact_root, version))
    attrs = ItemAttributes.from_arrays(loaded.arrays)
    assert attrs is not None and attrs.names == ["genre", "country"]
    fp = loaded.footprint
    # counted apart, never as embedding bytes
    assert fp.components["attributes"] == sum(int(genre_table()[n].nbytes) for n in genre_table())
    plain = load_artifact(version_path(artifact_root, build_artifact(artifact_root, "legcf")))
    assert ItemAttributes.from_arrays(plain.arrays) is None  # an artifact without the table still loads
    assert plain.footprint.embedding_bytes == fp.embedding_bytes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("item_attr_values"), "needs item_attr_names"),
        (lambda a: a.__setitem__("item_attr_codes", a["item_attr_codes"][:, :5]), "item_attr_codes"),
        (lambda a: a.__setitem__("item_attr_codes", a["item_attr_codes"] + 3), "beyond its column"),
        (lambda a: a.__setitem__("item_attr_values", a["item_attr_values"][::-1].copy()), "sorted and distinct"),
        (lambda a: a.__setitem__("item_attr_names", np.array(["genre", "genre"])), "distinct"),
        (lambda a: a.__setitem__("item_attr_offsets", np.array([0, 3, 5])), "offsets"),
        (lambda a: a.__setitem__("item_attr_codes", a["item_attr_codes"].astype(np.float32)), "dtype"),
    ],
)
def test_malformed_tables_are_refused(artifact_root: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    arrays = {**make_arrays("legcf", n_items=10), **genre_table()}
    change(arrays)
    with pytest.raises(ArtifactError, match=message):
        build_artifact(artifact_root, "legcf", arrays=arrays, manifest=make_manifest("legcf"))
