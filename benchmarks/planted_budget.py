"""C2F vs LEGCF at a larger budget on planted communities (the figures quoted in tests/trainer/test_budget.py).

    python benchmarks/planted_budget.py            # 8 and 32 communities, seeds 1-3, ~1 minute on 2 cores

Prints test NDCG@20 per seed for LEGCF (m_c = 24), C2F (24 coarse + 8 fine rows) and LEGCF with 35 rows, which has
more paper-convention parameters than that C2F.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.synthetic import planted_communities, write_lightgcn_dir  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402
from trainer.data import InteractionData, load_dataset  # noqa: E402
from trainer.train import train  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--communities", default="8,32")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print("| communities | seed | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---|" * len(VARIANTS))
    for n_communities in (int(c) for c in args.communities.split(",")):
        data = planted_data(n_communities, Path(tempfile.mkdtemp()))
        for seed in (int(s) for s in args.seeds.split(",")):
            row = [ndcg_at_20(data, variant, seed) for variant in VARIANTS]
            print(f"| {n_communities} | {seed} | " + " | ".join(f"{v:.4f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
