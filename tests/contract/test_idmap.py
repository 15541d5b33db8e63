"""contract.idmap.IdMap: the service's compact external-id -> index map (no Python object per id)."""

from __future__ import annotations

import numpy as np
import pytest

from c2f.contract.idmap import IdMap


@pytest.mark.parametrize("sort", [True, False])
def test_round_trip_of_every_id_sorted_or_not(sort: bool) -> None:
    rng = np.random.default_rng(0)
    ids = np.array([f"user-{v}" for v in rng.permutation(5000)])  # "user-10" < "user-9": not numeric order
    if sort:
        ids = np.sort(ids)
    idmap = IdMap(ids)
    assert np.array_equal(idmap.lookup(ids), np.arange(ids.size))
    for i in rng.integers(0, ids.size, 50):
        assert idmap.get(str(ids[i])) == i
    assert (idmap.nbytes() == 0) == sort  # sorted ids need no permutation
    assert len(idmap) == 5000


def test_unknown_ids_are_none_and_minus_one() -> None:
    idmap = IdMap(np.array(["b", "d", "a10", "a9"]))
    for unknown in ("", "a", "c", "e", "zzz", "a1", "b ", "d\x00", "é"):
        assert idmap.get(unknown) is None, unknown
    assert idmap.lookup(["d", "nope", "a9", "a10", "0"]).tolist() == [1, -1, 3, 2, -1]
    empty = IdMap(np.array([], dtype="<U1"))
    assert empty.get("x") is None and empty.lookup(["x"]).tolist() == [-1]


def test_integer_like_and_unicode_ids() -> None:
    ids = np.arange(12).astype(str)  # LightGCN datasets without id lists: "0", "1", ..., "11"
    idmap = IdMap(ids)
    assert [idmap.get(str(i)) for i in range(12)] == list(range(12))
    assert idmap.get("12") is None and idmap.get("01") is None
    uni = IdMap(np.array(["naïve", "café", "日本"]))
    assert uni.get("café") == 1 and uni.get("日本") == 2 and uni.get("cafe") is None


def test_a_long_or_nul_ended_key_is_unknown_and_costs_no_array_as_wide_as_it() -> None:
    """A request's ids are searched at the width of the longest known id: one huge id among many must not make
    a (len(keys), len(huge)) array (1000 ids and one of 1 MB would be 4 GB), and "d\\x00" is not "d"."""
    import tracemalloc

    idmap = IdMap(np.array(["b", "d", "a10", "a9"]))
    keys = ["d", "x" * 200_000, "d\x00", *(str(i) for i in range(999)), "a9"]
    tracemalloc.start()
    try:
        found = idmap.lookup(keys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found[:3].tolist() == [1, -1, -1] and found[-1] == 3 and (found[3:-1] == -1).all()
    assert peak < 1_000_000, peak  # 1002 keys × 3 characters, not 1002 × 200,000 × 4 bytes (800 MB)
    assert idmap.lookup(np.array(["d", "a10"])).tolist() == [1, 2]  # an array as given is searched as before
