"""Served fidelity vs bytes: the compressed serving form at several served terms and stored float types.

    python benchmarks/served_terms.py                       # planted communities (c2f/trainer/synthetic.py defaults)
    python benchmarks/served_terms.py --dataset /path/gowalla --param epochs=300   # a real dataset (hours on CPU)
    python benchmarks/served_terms.py --methods legcf,ud --pq 0,4,8   # with a product-quantized part (pq_subspaces)
    python benchmarks/served_terms.py --methods ud --pq 8 --item-norms on,off   # pq_item_norms both ways
    python benchmarks/served_terms.py --methods ud --pq 16 --refine 0,30   # codebooks as k-means left them, refined
    python benchmarks/served_terms.py --summarize seed1.md seed2.md seed3.md   # mean ± std, on vs off paired

Trains each method once (``--methods``, TrainConfig defaults plus ``--param key=value``; on planted data the small
configuration of tests/trainer/test_train.py), then exports it once per (``served_terms``, ``store_dtype``) pair
with c2f/trainer/export.py's own code, once per (``served_terms``, ``store_dtype``, ``pq_subspaces``) triple (methods
without a sparse form, ud, hash and qr, once per (``store_dtype``, ``pq_subspaces``): pq 0 is their stored table or
exact mode), and prints a markdown table: the trained Recall@20 (full propagation), the compressed (served) and
exact Recall@20 computed from the stored arrays, served / trained, the compressed serving bytes (everything
compressed scoring reads, as stored: S_c_idx_served + S_c_w_served + H_meta, plus pq_codes + pq_codebooks) against
the float32 full table (ud without codes: its stored table; hash and qr without codes are served exactly: "-"), all
embedding bytes, and the export seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

if not __package__:  # run as `python benchmarks/NAME.py`: see benchmarks/_as_script.py
    import _as_script  # noqa: F401

from c2f.contract.config import TrainConfig
from c2f.contract.footprint import footprint
from c2f.contract.methods import get_spec
from c2f.contract.served import ExactForm, form_class
from c2f.trainer.data import InteractionData, load_dataset
from c2f.trainer.export import build_arrays, build_manifest, served_metrics
from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir
from c2f.trainer.train import TrainedModel, train

PLANTED = dict(dim=32, m_c=24, m_r=8, t_r=3, d_r=16, batch_size=1024, epochs=40, seed=7)
"""The planted-data configuration (tests/trainer/test_train.py's SMALL)."""


def parse_value(text: str) -> Any:
    """``-p`` values: JSON when it parses (numbers, true, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def variant_row(
    trained: TrainedModel,
    data: InteractionData,
    terms: int | None,
    store_dtype: str,
    pq: int = 0,
    item_norms: bool | None = None,
    refine: int = 0,
) -> dict[str, Any]:
    """Export ``trained`` with ``terms`` served terms (None: as trained) and ``pq`` product-quantized codes stored
    as ``store_dtype`` (``item_norms``: ``pq_item_norms``; ``refine``: ``pq_refine_epochs``); the figures of one
    table row."""
    config = dataclasses.replace(
        trained.config,
        served_terms=terms,
        store_dtype=store_dtype,  # type: ignore[arg-type]
        pq_subspaces=pq,
        pq_item_norms=item_norms,
        pq_refine_epochs=refine,
    )
    variant = dataclasses.replace(trained, config=config, info=dict(trained.info))
    t0 = time.perf_counter()
    arrays = build_arrays(variant, data)
    seconds = time.perf_counter() - t0
    served = served_metrics(arrays, build_manifest(variant, data), data)
    fp = footprint(arrays, config.method)
    spec = get_spec(config.method)
    form = form_class(spec, arrays.keys(), "compressed")  # what compressed mode reads (ud: its stored table)
    serving = None if form is ExactForm else sum(fp.arrays[name] for name in form.reads(spec, arrays.keys()))
    ratio = None if serving is None else fp.full_table_bytes / serving
    return {
        "served": float(served["compressed"].test["recall@20"]),  # type: ignore[index]
        "exact": float(served["exact"].test["recall@20"]),  # type: ignore[index]
        "serving_bytes": serving,
        "ratio": ratio,
        "embedding_bytes": fp.embedding_bytes,
        "full_bytes": fp.full_table_bytes,
        "seconds": seconds,
        "item_norms": "pq_item_scale" in arrays,
        "refine": variant.info.get("pq_refine"),
    }


def refine_note(record: dict[str, Any]) -> str:
    """One line on a codebook refinement (c2f/trainer/refine.py's record): epochs run, the one kept, validation."""
    criterion = record["criterion"]
    start, best = (record[k][criterion] if record[k] else float("nan") for k in ("start_valid", "best_valid"))
    return (
        f"{record['epochs']} epochs, kept epoch {record['best_epoch']} (0: k-means' codebooks), "
        f"valid {criterion} {start:.4f} -> {best:.4f}, {record['seconds']:.1f} s"
    )


def summarize(paths: list[str]) -> list[str]:
    """Several runs' tables (this script's stdout, one file a seed) -> per row kind (method, terms, codes, item
    norms, dtype): served R@20 and served / trained, mean ± std over the files; and for each kind with codes, item
    norms on minus off over the files that have both (paired t-test, scipy's ttest_rel)."""
    import numpy as np

    from benchmarks.common import paired_t

    rows: dict[tuple[str, ...], list[tuple[int, float, float]]] = {}
    for index, path in enumerate(paths):
        for line in Path(path).read_text().splitlines():
            cells = [c.strip() for c in line.split("|")[1:-1]]
            if len(cells) != 13 or not cells[5].replace(".", "", 1).isdigit():
                continue
            served, trained = float(cells[6]), float(cells[5])
            rows.setdefault(tuple(cells[:5]), []).append((index, served, served / trained))
    out = ["| method | served terms | pq codes | item norms | store dtype | runs | served R@20 | served / trained |"]
    out.append("|---|---|---|---|---|---|---|---|")
    for key, values in rows.items():
        r20 = np.array([v[1] for v in values])
        share = np.array([v[2] for v in values])
        ddof = 1 if len(values) > 1 else 0  # one run: std 0
        out.append(
            f"| {' | '.join(key)} | {len(values)} | {r20.mean():.4f} ± {r20.std(ddof=ddof):.4f} "
            f"| {share.mean():.1%} ± {share.std(ddof=ddof):.1%} |"
        )
    for key, on in rows.items():
        off = rows.get((*key[:3], "off", key[4]))
        if key[3] != "on" or off is None:
            continue
        by_run = {v[0]: v[1] for v in off}
        pairs = [(v[1], by_run[v[0]]) for v in on if v[0] in by_run]
        if len(pairs) >= 2:
            x, y = np.array(pairs).T
            diff, p = paired_t(x, y)
            out.append(
                f"{key[0]} pq {key[2]} ({key[4]}): served R@20 item norms on − off = {diff:+.4f} over "
                f"{len(pairs)} runs (paired t-test p = {p:.3g})"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="dataset URI or directory (default: planted communities)")
    parser.add_argument("--methods", default="legcf,c2f")
    parser.add_argument("--terms", default="2,4,8")
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--pq", default="0", help="pq_subspaces values (0: none)")
    parser.add_argument(
        "--item-norms", default="auto", help="pq_item_norms values for rows with codes: auto (the default), on, off"
    )
    parser.add_argument("--refine", default="0", help="pq_refine_epochs values for rows with codes (0: k-means only)")
    parser.add_argument("-p", "--param", action="append", default=[], help="TrainConfig key=value (repeatable)")
    parser.add_argument("--summarize", nargs="+", metavar="TABLE", help="run nothing: summarize earlier runs' tables")
    args = parser.parse_args()
    if args.summarize:
        print("\n".join(summarize(args.summarize)))
        return
    logging.disable(logging.WARNING)

    base: dict[str, Any] = dict(PLANTED) if args.dataset is None else {}
    for item in args.param:
        key, _, value = item.partition("=")
        base[key] = parse_value(value)
    # the validation split as training would make it (seed, valid_fraction, valid_from; the protocol presets)
    split = TrainConfig.from_dict(base)
    uri = args.dataset
    if uri is None:
        users, items, _, _ = planted_communities()
        uri = str(write_lightgcn_dir(Path(tempfile.mkdtemp()) / "planted", users, items))
    data = load_dataset(uri, seed=split.seed, valid_fraction=split.valid_fraction, valid_from=split.valid_from)
    print(f"data: {data.n_users} users, {data.n_items} items; config: {base}")
    print(
        "| method | served terms | pq codes | item norms | store dtype | trained R@20 | served R@20 | served / trained "
        "| exact R@20 | serving bytes | × smaller than float32 table | embedding bytes | export s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    norm_values = {"auto": None, "on": True, "off": False}
    item_norms = [norm_values[v] for v in args.item_norms.split(",")]
    refines = [int(v) for v in args.refine.split(",")]
    for method in args.methods.split(","):
        trained = train(data, TrainConfig.from_dict({**base, "method": method}))
        trained_r20 = float(trained.test["recall@20"])
        sparse = get_spec(method).compressed
        all_terms: list[int | None] = [int(t) for t in args.terms.split(",")] if sparse else [None]
        for terms in all_terms:
            for pq in (int(p) for p in args.pq.split(",")):
                for norms, refine in itertools.product(item_norms, refines) if pq else [(None, 0)]:
                    for store_dtype in args.dtypes.split(","):
                        r = variant_row(trained, data, terms, store_dtype, pq, norms, refine)
                        serving = "-" if r["serving_bytes"] is None else f"{r['serving_bytes']:,}"
                        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}"
                        codes = f"{pq} + refine" if refine else str(pq)
                        print(
                            f"| {method} | {terms or '-'} | {codes} | {'on' if r['item_norms'] else 'off'} "
                            f"| {store_dtype} | {trained_r20:.4f} | {r['served']:.4f} "
                            f"| {r['served'] / trained_r20:.1%} | {r['exact']:.4f} | {serving} "
                            f"| {ratio} | {r['embedding_bytes']:,} | {r['seconds']:.1f} |",
                            flush=True,
                        )
                        if r["refine"]:
                            print(f"<!-- refine: {refine_note(r['refine'])} -->", flush=True)


if __name__ == "__main__":
    main()
