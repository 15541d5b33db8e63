"""Where a training epoch's time goes, for the single-phase methods (UD, hashing, QR) on a LightGCN dataset.

    OMP_NUM_THREADS=1 python benchmarks/train_step.py ../shared/data/gowalla --method ud --dim 64 --batch 65536
    OMP_NUM_THREADS=1 python benchmarks/train_step.py DATA --method hash --dim 128 --batch 8192 --buckets 1416

Prints, as medians over ``--repeats`` runs after one warm-up: seconds per training epoch (``Trainer.train_epoch``,
everything a real epoch does), the sampler's share of it (a whole epoch of BPR triplets drawn alone), and one sparse
product Â·X over the (N, d) table two ways: ``torch.sparse.mm`` (a new, zero-filled result each call) and
``torch.addmm(out=, beta=0)`` into an existing array (what ``trainer.graph`` uses). A micro-benchmark behind the
choices in ``c2f/trainer/graph.py``, ``c2f/trainer/fit.py`` and ``c2f/trainer/sampling.py``, not a test.
``--profile`` also prints torch.profiler's table of one more epoch (operators by self CPU time). For ``hash``,
``--buckets`` sets B and ``--operator on|off`` forces training through P = M·H or propagating every batch
(``auto``: what training picks).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

import numpy as np
import torch


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="a LightGCN dataset directory (train.txt, test.txt)")
    parser.add_argument("--method", choices=["ud", "hash", "qr"], default="ud")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--negatives", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed (sparse products: 5x as many)")
    parser.add_argument("--buckets", type=int, help="hash: B (default: the method's automatic size)")
    parser.add_argument("--operator", choices=["auto", "on", "off"], default="auto", help="hash: train through P = M·H")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's operator table of one epoch")
    args = parser.parse_args()

    from c2f.contract.config import TrainConfig
    from c2f.trainer.data import load_dataset
    from c2f.trainer.fit import Trainer
    from c2f.trainer.methods import single_phase_model
    from c2f.trainer.models import Hashed

    torch.manual_seed(0)
    data = load_dataset(args.data, valid_fraction=0.0)
    sizes = {"hash_buckets": args.buckets} if args.buckets else {}
    config = TrainConfig(method=args.method, dim=args.dim, batch_size=args.batch, negatives=args.negatives, **sizes)
    model = single_phase_model(data, config, torch.device("cpu"))
    if isinstance(model, Hashed) and args.operator != "auto":
        model.operator = args.operator == "on"
    trainer = Trainer(
        data, batch_size=args.batch, negatives=args.negatives, reg=config.reg, eval_every=1, patience=1, seed=0
    )
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    n = data.n_users + data.n_items
    print(f"{args.method} d={args.dim} batch={args.batch} N={n} nnz={data.train.nnz} threads={torch.get_num_threads()}")
    if isinstance(model, Hashed):
        print(f"hash B={model.table.shape[0]} operator={'on' if model.operator else 'off'}")

    epoch = median_seconds(lambda: trainer.train_epoch(model, optimizer), args.repeats)
    sampling = median_seconds(lambda: list(trainer.sampler.epoch(args.batch)), args.repeats)
    adj = model.adj
    x = torch.randn(n, args.dim)
    out = torch.empty_like(x)
    with torch.no_grad():
        fresh = median_seconds(lambda: torch.sparse.mm(adj, x), 5 * args.repeats)
        into = median_seconds(lambda: torch.addmm(out, adj, x, beta=0.0, out=out), 5 * args.repeats)
    batches = -(-data.train.nnz // args.batch)
    print(f"epoch: {epoch:.2f} s ({batches} batches, {epoch / batches * 1000:.0f} ms each)")
    print(f"sampling alone: {sampling:.3f} s per epoch")
    print(f"sparse product: torch.sparse.mm {fresh * 1000:.1f} ms, addmm(out=) {into * 1000:.1f} ms")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train_epoch(model, optimizer)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
