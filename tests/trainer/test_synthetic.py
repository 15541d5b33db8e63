"""tests.synthetic: planted communities, writers, popularity baseline."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from c2f.trainer.data import load_dataset
from c2f.trainer.evaluate import evaluate
from c2f.trainer.synthetic import planted_communities, popularity_recall, write_interactions_csv, write_lightgcn_dir


def test_planted_communities_shape_and_determinism() -> None:
    users, items, cu, ci = planted_communities()
    assert users.dtype == items.dtype == np.int64
    assert cu.shape == (600,) and ci.shape == (400,) and set(cu.tolist()) == set(range(8))
    per_user = np.bincount(users, minlength=600)
    assert per_user.min() >= 8 and per_user.max() <= 20
    keys = users * 400 + items
    assert np.unique(keys).size == keys.size and np.all(np.diff(keys) > 0)  # unique, sorted by (user, item)
    assert 0.8 < np.mean(cu[users] == ci[items]) < 0.95  # p_in = 0.9 (minus collisions)
    again = planted_communities()
    assert all(np.array_equal(a, b) for a, b in zip((users, items, cu, ci), again, strict=True))
    other = planted_communities(seed=1)
    assert not np.array_equal(other[1], items)
    small = planted_communities(n_users=10, n_items=12, n_communities=3, items_per_user=(2, 3), seed=4)
    assert np.bincount(small[0], minlength=10).max() <= 3


def test_writers_and_community_model_beats_popularity(tmp_path: Path, synthetic_lightgcn_dir: Path) -> None:
    data = load_dataset(str(synthetic_lightgcn_dir))
    assert (data.n_users, data.n_items) == (600, 400)
    pop = popularity_recall(data)
    _, _, cu, ci = planted_communities()
    # the "oracle" community model: one-hot community embeddings
    oracle = evaluate(np.eye(8)[cu], np.eye(8)[ci], data.test, [data.train, data.valid], ks=(20,))
    assert 0.0 < pop < 0.25
    assert oracle["recall@20"] > pop + 0.2
    # csv writer: string ids, gz, timestamps column
    users, items, _, _ = planted_communities(n_users=20, n_items=15, n_communities=2, seed=2)
    gz = write_interactions_csv(tmp_path / "x.csv.gz", users, items, timestamps=np.arange(users.size))
    header = gzip.decompress(gz.read_bytes()).decode().splitlines()[:2]
    assert header[0] == "user,item,timestamp" and header[1].startswith("u0,i")
    plain = write_interactions_csv(tmp_path / "y.csv", users, items, with_ids_prefix=False)
    assert plain.read_text().splitlines()[1].startswith("0,")
    # lightgcn writer with id lists
    d = write_lightgcn_dir(tmp_path / "lg", users, items, test_fraction=0.3, with_lists=True)
    assert (d / "user_list.txt").read_text().splitlines()[:2] == ["org_id remap_id", "u0 0"]
    loaded = load_dataset(str(d), valid_fraction=0.0)
    assert loaded.train.nnz + loaded.test.nnz == users.size
    assert np.all(np.diff(loaded.train.indptr) >= 1)
