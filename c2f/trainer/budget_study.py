"""C2F vs LEGCF at a larger parameter budget on planted communities: the data and configurations of the study.

Shared by ``benchmarks/planted_budget.py`` (which prints the figures) and ``tests/trainer/test_budget.py`` (which
tests them), so that the quoted figures are the tested ones.
"""

from __future__ import annotations

from pathlib import Path

from c2f.contract.config import TrainConfig
from c2f.trainer.data import InteractionData, load_dataset
from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir
from c2f.trainer.train import train

BASE = dict(dim=32, m_r=8, t_r=3, d_r=16, batch_size=1024, epochs=40)
VARIANTS = {
    "legcf-24": dict(method="legcf", m_c=24),
    "c2f-24+8": dict(method="c2f", m_c=24),
    # 35·32 = 1,120 codebook values >= the C2F's 24·32 + 8·32 + 3·24 = 1,096
    "legcf-35": dict(method="legcf", m_c=35),
}


def planted_data(n_communities: int, directory: Path) -> InteractionData:
    """600 users, 400 items in ``n_communities`` planted communities, written to and loaded from ``directory``."""
    users, items, _, _ = planted_communities(n_users=600, n_items=400, n_communities=n_communities, seed=0)
    return load_dataset(str(write_lightgcn_dir(directory, users, items)))


def ndcg_at_20(data: InteractionData, variant: str, seed: int) -> float:
    """Test NDCG@20 of one variant trained on ``data``."""
    return float(train(data, TrainConfig(**BASE, **VARIANTS[variant], seed=seed)).test["ndcg@20"])  # type: ignore[arg-type]
