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
from trainer.data import load_dataset  # noqa: E402
from trainer.train import train  # noqa: E402

BASE = dict(dim=32, m_r=8, t_r=3, d_r=16, batch_size=1024, epochs=40)
VARIANTS = {
    "legcf-24": dict(method="legcf", m_c=24),
    "c2f-24+8": dict(method="c2f", m_c=24),
    "legcf-35": dict(method="legcf", m_c=35),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--communities", default="8,32")
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print("| communities | seed | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---|" * len(VARIANTS))
    for n_communities in (int(c) for c in args.communities.split(",")):
        users, items, _, _ = planted_communities(n_users=600, n_items=400, n_communities=n_communities, seed=0)
        data = load_dataset(str(write_lightgcn_dir(Path(tempfile.mkdtemp()), users, items)))
        for seed in (int(s) for s in args.seeds.split(",")):
            row = [train(data, TrainConfig(**BASE, **kw, seed=seed)).test["ndcg@20"] for kw in VARIANTS.values()]  # type: ignore[arg-type]
            print(f"| {n_communities} | {seed} | " + " | ".join(f"{v:.4f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
