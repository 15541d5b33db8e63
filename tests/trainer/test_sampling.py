"""trainer.sampling: BPR triplets against a brute-force set of the training pairs."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from c2f.trainer.sampling import BPRSampler


def _train(seed: int = 0, n_users: int = 40, n_items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0
    return sp.csr_matrix(dense)


def test_is_positive_agrees_with_the_set_of_training_pairs_in_any_query_order_and_shape() -> None:
    train = _train()
    sampler = BPRSampler(train)
    pairs = set(zip(*train.nonzero(), strict=True))
    rng = np.random.default_rng(1)
    users = rng.integers(0, train.shape[0], (500, 3))
    items = rng.integers(0, train.shape[1], (500, 3))
    found = sampler.is_positive(users, items)
    assert found.shape == (500, 3)
    expected = np.array([(u, i) in pairs for u, i in zip(users.ravel(), items.ravel(), strict=True)]).reshape(500, 3)
    assert found.any() and not found.all()
    np.testing.assert_array_equal(found, expected)


def test_an_epoch_covers_every_interaction_once_with_negatives_that_are_not_positives() -> None:
    train = _train(2)
    sampler = BPRSampler(train, negatives=4, seed=3)
    pairs = set(zip(*train.nonzero(), strict=True))
    seen = []
    for users, pos, neg in sampler.epoch(batch_size=64):
        assert neg.shape == (len(users), 4)
        assert not any((u, i) in pairs for u, row in zip(users, neg, strict=True) for i in row)
        seen.extend(zip(users, pos, strict=True))
    assert len(seen) == train.nnz and set(seen) == pairs


def test_is_positive_takes_the_broadcast_shape_of_users_and_items() -> None:
    train = _train(4)
    found = BPRSampler(train).is_positive(np.arange(train.shape[0])[:, None], np.arange(train.shape[1])[None, :])
    np.testing.assert_array_equal(found, train.toarray() > 0)


def test_user_uniform_epochs_draw_users_alike_whatever_their_degree() -> None:
    # a planted skew: user 0 holds 40 of the 43 interactions, users 1-3 one each, user 4 none
    dense = np.zeros((5, 60), np.float32)
    dense[0, :40] = 1.0
    dense[1, 0] = dense[2, 1] = dense[3, 2] = 1.0
    train = sp.csr_matrix(dense)
    pairs = set(zip(*train.nonzero(), strict=True))
    sampler = BPRSampler(train, seed=5, by="users")
    users, positives = [], []
    for _ in range(200):
        for u, p, neg in sampler.epoch(batch_size=16):
            assert all((a, b) in pairs for a, b in zip(u, p, strict=True))  # a positive of its own user
            assert not any((a, i) in pairs for a, row in zip(u, neg, strict=True) for i in row)
            users.append(u)
            positives.append(p)
    drawn = np.concatenate(users)
    assert len(drawn) == 200 * train.nnz  # nnz triplets an epoch, as with "interactions"
    share = np.bincount(drawn, minlength=5) / len(drawn)
    np.testing.assert_allclose(share[:4], 0.25, atol=0.02)  # by interactions user 0 would get 40/43
    assert share[4] == 0.0  # a user without training items is never drawn
    of_user0 = np.concatenate(positives)[drawn == 0]
    counts = np.bincount(of_user0, minlength=40)[:40]
    assert counts.min() > 0 and counts.max() < 3 * counts.mean()  # its positives drawn alike


def test_sampling_is_checked_and_reaches_the_sampler() -> None:
    import pytest

    from c2f.contract.config import TrainConfig

    with pytest.raises(ValueError, match="sampling"):
        BPRSampler(_train(), by="items")
    with pytest.raises(ValueError, match="sampling"):
        TrainConfig(sampling="items")  # type: ignore[arg-type]
