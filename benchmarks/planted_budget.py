"""C2F vs LEGCF at a larger budget on planted communities (the figures quoted in tests/trainer/test_budget.py;
the data and configurations are c2f/trainer/budget_study.py's).

    python benchmarks/planted_budget.py            # 8 and 32 communities, seeds 1-3, ~1 minute on 2 cores

Prints test NDCG@20 per seed for LEGCF (m_c = 24), C2F (24 coarse + 8 fine rows) and LEGCF with 35 rows, which has
more paper-convention parameters than that C2F.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from c2f.trainer.budget_study import VARIANTS, ndcg_at_20, planted_data


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
