"""Without any flag, `c2f train` gives a good model on a dataset of a few thousand users (issue: defaults)."""

from __future__ import annotations

import pytest

from c2f.contract.config import TrainConfig
from c2f.trainer.data import load_dataset
from c2f.trainer.pipeline import train_and_publish
from c2f.trainer.synthetic import planted_communities, popularity_recall, write_lightgcn_dir


@pytest.mark.slow
def test_default_config_learns_a_few_thousand_users(tmp_path):
    users, items, _, _ = planted_communities(n_users=3000, n_items=2000, n_communities=20, seed=1)
    dataset = write_lightgcn_dir(tmp_path / "data", users, items)
    baseline = popularity_recall(load_dataset(str(dataset)), k=20)
    # what `c2f train DATA` trains: the default recipe (no method named)
    published = train_and_publish(str(dataset), TrainConfig.from_dict({}), tmp_path / "artifacts")
    metrics = published.manifest.metrics.model_dump()
    trained = metrics["trained"]["test"]["recall@20"]
    served = metrics["served"]["compressed"]["test"]["recall@20"]
    print(f"popularity {baseline:.4f}  default recipe {trained:.4f}  served {served:.4f}")
    assert trained > 5 * baseline
    assert served > 0.95 * trained
