"""trainer.data.extra: recorded interactions merged into a dataset's training split."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from c2f.trainer.data import InteractionData
from c2f.trainer.data.extra import ExtraInteractions, add_interactions


def _csr(pairs: list[tuple[int, int]], n_users: int = 3, n_items: int = 5) -> sp.csr_matrix:
    rows, cols = zip(*pairs, strict=True) if pairs else ((), ())
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))


def _data() -> InteractionData:
    return InteractionData(
        train=_csr([(0, 0), (0, 1), (1, 2), (2, 3)]),
        valid=_csr([(0, 2)]),
        test=_csr([(1, 4), (2, 0)]),
        user_ids=np.array(["a", "b", "c"]),
        item_ids=np.array(["i0", "i1", "i2", "i3", "i4"]),
        uri="mem://x",
        content_hash="h",
        stats={"n_users": 3, "n_train": 4, "format": "test"},
    )


def _pairs(m: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))


def test_events_join_train_move_out_of_held_out_splits_and_add_users() -> None:
    extra = ExtraInteractions(
        user_ids=["a", "a", "b", "new", "c", "new", "a", "b"],
        item_ids=["i0", "i3", "i4", "i1", "i0", "i1", "zzz", "i3"],
        info={"stream": "s", "last_id": "5-0"},
    )
    merged, summary = add_interactions(_data(), extra)
    assert merged.user_ids.tolist() == ["a", "b", "c", "new"]
    assert merged.train.shape == merged.valid.shape == merged.test.shape == (4, 5)
    assert _pairs(merged.train) == {(0, 0), (0, 1), (1, 2), (2, 3), (0, 3), (1, 4), (3, 1), (2, 0), (1, 3)}
    assert _pairs(merged.valid) == {(0, 2)}
    assert _pairs(merged.test) == set()  # (b, i4) and (c, i0) were done again: training data now
    assert summary == {
        "stream": "s",
        "last_id": "5-0",
        "pairs": 8,
        "unknown_items": 1,
        "already_in_train": 1,
        "added_to_train": 5,
        "moved_from_valid": 0,
        "moved_from_test": 2,
        "new_users": 1,
    }
    assert merged.stats["extra_interactions"] == summary
    assert merged.stats["n_users"] == 4 and merged.stats["n_train"] == 9 and merged.stats["n_test"] == 0
    assert merged.stats["format"] == "test" and merged.content_hash == "h"  # the dataset's identity is kept
    assert merged.train.dtype == np.float32 and set(merged.train.data.tolist()) == {1.0}


def test_a_valid_pair_moves_and_nothing_else_changes_without_events() -> None:
    merged, summary = add_interactions(_data(), ExtraInteractions(["a"], ["i2"]))
    assert summary["moved_from_valid"] == 1 and _pairs(merged.valid) == set() and (0, 2) in _pairs(merged.train)
    same, summary = add_interactions(_data(), ExtraInteractions([], []))
    assert summary["added_to_train"] == 0 and same.n_users == 3 and _pairs(same.train) == _pairs(_data().train)
    with pytest.raises(ValueError, match="2 user ids but 1 item ids"):
        add_interactions(_data(), ExtraInteractions(["a", "b"], ["i0"]))
