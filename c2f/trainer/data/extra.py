"""Interactions recorded after a dataset was written (the service's event log), merged into its training split.

``POST /train`` (``include_events``, on by default) trains on the dataset plus every event the service recorded for
it (:func:`c2f.service.events.read_recorded`; the job hands them over as :class:`ExtraInteractions`), so that
nothing a user did between trainings is lost. :func:`add_interactions` is the one place they enter:

* an event pair is a training interaction: it joins ``train`` (the graph and the BPR positives);
* a pair already in ``train`` adds nothing; a pair the split held out (``valid`` or ``test``) moves to ``train``:
  the user did it again after the dataset was written, the model should learn it, and evaluation must not score the
  model on a pair it trained on (so valid/test lose that pair);
* a user id the dataset does not have becomes a new user (appended after the dataset's users, in the order of its
  first event) with only training interactions, so the trained model knows it;
* an item id the dataset does not have is dropped and counted (the service refuses events of items its model does
  not know, so only a model trained on other data can have recorded one).

Torch-free (numpy, scipy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from c2f.trainer.data.dataset import InteractionData
from c2f.trainer.data.split import to_csr


@dataclass(frozen=True)
class ExtraInteractions:
    """(user id, item id) pairs to train on besides the dataset's, and what to record about them in the manifest
    (``info``: for the service's events, the stream and its last entry included)."""

    user_ids: list[str]
    item_ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)


def _pairs(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    coo = m.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def _without(m: sp.csr_matrix, keys: np.ndarray, n_users: int, n_items: int) -> tuple[sp.csr_matrix, int]:
    """``m`` (grown to ``n_users`` rows) without the pairs whose ``user * n_items + item`` key is in ``keys``."""
    users, items = _pairs(m)
    drop = np.isin(users * n_items + items, keys)
    return to_csr(users[~drop], items[~drop], n_users, n_items), int(drop.sum())


def add_interactions(data: InteractionData, extra: ExtraInteractions) -> tuple[InteractionData, dict[str, Any]]:
    """``data`` with ``extra``'s pairs in its training split (see the module docstring) and a summary of what they
    changed (also in the returned data's ``stats["extra_interactions"]``)."""
    if len(extra.user_ids) != len(extra.item_ids):
        raise ValueError(f"{len(extra.user_ids)} user ids but {len(extra.item_ids)} item ids")
    n_items = data.n_items
    item_index = {str(item): i for i, item in enumerate(data.item_ids.tolist())}
    user_index = {str(user): u for u, user in enumerate(data.user_ids.tolist())}
    new_ids: list[str] = []
    users: list[int] = []
    items: list[int] = []
    unknown_items = 0
    for user_id, item_id in zip(extra.user_ids, extra.item_ids, strict=True):
        item = item_index.get(item_id)
        if item is None:
            unknown_items += 1
            continue
        user = user_index.get(user_id)
        if user is None:
            user = user_index[user_id] = len(user_index)
            new_ids.append(user_id)
        users.append(user)
        items.append(item)
    n_users = data.n_users + len(new_ids)
    keys = np.unique(np.asarray(users, dtype=np.int64) * n_items + np.asarray(items, dtype=np.int64))
    tr_u, tr_i = _pairs(data.train)
    already = np.isin(keys, tr_u * n_items + tr_i, assume_unique=True)
    added = keys[~already]
    valid, from_valid = _without(data.valid, added, n_users, n_items)
    test, from_test = _without(data.test, added, n_users, n_items)
    train = to_csr(np.concatenate([tr_u, added // n_items]), np.concatenate([tr_i, added % n_items]), n_users, n_items)
    summary = {
        **extra.info,
        "pairs": len(extra.user_ids),
        "unknown_items": unknown_items,
        "already_in_train": int(already.sum()),
        "added_to_train": int(added.size),
        "moved_from_valid": from_valid,
        "moved_from_test": from_test,
        "new_users": len(new_ids),
    }
    stats = dict(data.stats)
    stats.update(
        n_users=n_users,
        n_train=int(train.nnz),
        n_valid=int(valid.nnz),
        n_test=int(test.nnz),
        n_test_users=int((np.diff(test.indptr) > 0).sum()),
        extra_interactions=summary,
    )
    merged = dataclasses.replace(
        data,
        train=train,
        valid=valid,
        test=test,
        user_ids=np.concatenate([data.user_ids, np.asarray(new_ids, dtype=str)]).astype(str),
        stats=stats,
    )
    return merged, summary
