"""Full-ranking evaluation time on a LightGCN dataset's real masks with random embeddings.

python benchmarks/evaluate_timing.py --data ../shared/data/gowalla --dim 64
"""

from __future__ import annotations

import argparse
import time

import numpy as np

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from benchmarks.common import DATA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA / "gowalla"))
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from c2f.trainer.data import load_dataset
    from c2f.trainer.evaluate import evaluate

    data = load_dataset(args.data)
    rng = np.random.default_rng(args.seed)
    users = rng.standard_normal((data.n_users, args.dim)).astype(np.float32)
    items = rng.standard_normal((data.n_items, args.dim)).astype(np.float32)
    started = time.perf_counter()
    result = evaluate(users, items, data.test, [data.train, data.valid])
    elapsed = time.perf_counter() - started
    print(
        f"evaluate on {data.n_users} x {data.n_items}, d={args.dim}: {elapsed:.2f} s with "
        f"{torch.get_num_threads()} threads ({result['n_users']} users, recall@20 {result['recall@20']:.4f})"
    )


if __name__ == "__main__":
    main()
