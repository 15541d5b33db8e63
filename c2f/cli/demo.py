"""`c2f demo`: train a small model, serve it in-process, print one recommendation and the footprint.

With no dataset URI the demo writes a bundled synthetic dataset first: users and items belong to planted
communities ("genres"), and each user mostly interacts with items of their own genre, so a working model visibly
recommends items of the user's genre. The dataset is written in the LightGCN directory format (``train.txt``,
``test.txt``, ``user_list.txt``, ``item_list.txt``) that ``c2f train`` and ``POST /train`` read.

Nothing here needs Docker, Redis or a network: training runs through :func:`trainer.pipeline.train_and_publish`, and
the service is built with :func:`service.main.create_app` and queried through FastAPI's ``TestClient``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from c2f.contract.footprint import human_bytes
from c2f.contract.manifest import Manifest

GENRES = ("jazz", "rock", "folk", "soul", "punk", "opera")

# A configuration small enough to train in about a minute on two CPU cores (paper defaults are in TrainConfig).
DEMO_PARAMS: dict[str, Any] = {
    "dim": 32,
    "layers": 2,
    "epochs": 40,
    "batch_size": 2048,
    "lr": 1e-2,
    "lr_fine": 5e-3,
    "patience": 4,
    "m_c": 24,
    "t_c": 2,
    "m_r": 8,
    "t_r": 3,
    "d_r": 16,
    "seed": 2024,
}


@dataclass
class DemoResult:
    """What the demo produced: where, which version, and the two responses it printed."""

    dataset_uri: str
    out_root: str
    version: str
    user_id: str
    recommendation: dict[str, Any]
    footprint: dict[str, Any]
    manifest: Manifest
    seconds: float
    genre: str | None = None  # the user's planted genre, for the bundled synthetic dataset


# ---------------------------------------------------------------------------------------------------------------
# The bundled synthetic dataset


@dataclass
class SyntheticDataset:
    """The bundled demo dataset: where it was written and each user's planted genre."""

    path: Path
    genre_of_user: dict[str, str]


def write_synthetic_dataset(
    directory: str | Path,
    *,
    n_users: int = 600,
    items_per_genre: int = 40,
    per_user: tuple[int, int] = (10, 24),
    in_genre: float = 0.85,
    test_fraction: float = 0.2,
    seed: int = 7,
) -> SyntheticDataset:
    """Write a planted-community dataset in the LightGCN directory format (:mod:`trainer.synthetic`).

    Users and items belong to one of :data:`GENRES`; each user interacts with ``per_user`` distinct items, a
    fraction ``in_genre`` of them (in expectation, with a popularity skew) from its genre. Every user keeps at least
    one training and one test interaction. External ids read ``user-0007`` and ``jazz-012``.
    """
    from c2f.trainer.synthetic import planted_communities, write_lightgcn_dir

    users, items, genre_of_user, genre_of_item = planted_communities(
        n_users=n_users,
        n_items=len(GENRES) * items_per_genre,
        n_communities=len(GENRES),
        items_per_user=per_user,
        p_in=in_genre,
        seed=seed,
    )
    rank_in_genre = np.zeros(len(genre_of_item), dtype=np.int64)
    for g in range(len(GENRES)):
        members = np.flatnonzero(genre_of_item == g)
        rank_in_genre[members] = np.arange(members.size)
    user_names = [f"user-{u:04d}" for u in range(n_users)]
    item_names = [f"{GENRES[g]}-{r:03d}" for g, r in zip(genre_of_item.tolist(), rank_in_genre.tolist(), strict=True)]
    path = write_lightgcn_dir(
        directory, users, items, test_fraction, seed, with_lists=True, user_names=user_names, item_names=item_names
    )
    return SyntheticDataset(path, {name: GENRES[g] for name, g in zip(user_names, genre_of_user.tolist(), strict=True)})


# ---------------------------------------------------------------------------------------------------------------
# Printing


def _items_of(recommendation: Mapping[str, Any]) -> list[tuple[str, float | None]]:
    """(item id, score) pairs from a /recommend response, tolerant of the exact field names."""
    raw = recommendation.get("items") or recommendation.get("recommendations") or []
    out: list[tuple[str, float | None]] = []
    for entry in raw:
        if isinstance(entry, Mapping):
            item = entry.get("item_id", entry.get("item", entry.get("id")))
            score = entry.get("score")
            out.append((str(item), float(score) if score is not None else None))
        else:
            out.append((str(entry), None))
    scores = recommendation.get("scores")
    if scores is not None and out and all(s is None for _, s in out):
        out = [(item, float(s)) for (item, _), s in zip(out, scores, strict=False)]
    return out


def format_report(result: DemoResult) -> str:
    """The text `c2f demo` prints."""
    fp = result.footprint
    lines = [
        f"model {result.version}  (method {result.manifest.method}, trained in {result.seconds:.0f} s)",
        f"artifacts in {result.out_root}   dataset {result.dataset_uri}",
        "",
        f"top {len(_items_of(result.recommendation))} for {result.user_id}"
        + (f" (planted genre: {result.genre})" if result.genre else "")
        + ":",
    ]
    for rank, (item, score) in enumerate(_items_of(result.recommendation), 1):
        lines.append(f"  {rank:2d}. {item:<16s}" + (f" {score:8.4f}" if score is not None else ""))
    full = fp.get("full_table_bytes")
    emb = fp.get("embedding_bytes")
    serving = fp.get("compressed_serving_bytes")
    lines += ["", "footprint:"]
    if full is not None:
        lines.append(f"  float32 full table (N x d)     {human_bytes(full):>12s}")
    if emb is not None:
        ratio = fp.get("compression_ratio_bytes")
        lines.append(
            f"  stored embedding arrays        {human_bytes(emb):>12s}"
            + (f"   ({ratio:.1f}x smaller)" if ratio else "")
        )
    if serving is not None:
        ratio = fp.get("compression_ratio_serving_bytes") or (full / serving if full and serving else None)
        lines.append(
            f"  read by compressed serving     {human_bytes(serving):>12s}"
            + (f"   ({ratio:.1f}x smaller)" if ratio else "")
        )
    if fp.get("params_paper") is not None:
        lines.append(
            f"  parameters (paper convention)  {fp['params_paper']:>12,d}   vs {fp.get('full_table_params', 0):,d}"
        )
    test = result.manifest.metrics.test("trained")
    served = result.manifest.metrics.test("compressed")
    if test or served:
        lines += ["", "test metrics (trained | served compressed):"]
        for key in ("recall@20", "ndcg@20"):
            a, b = test.get(key), served.get(key)
            if a is not None or b is not None:
                fa = f"{a:.4f}" if a is not None else "-"
                fb = f"{b:.4f}" if b is not None else "-"
                lines.append(f"  {key:<10s} {fa} | {fb}")
    lines += [
        "",
        f"serve it:  C2F_ARTIFACT_ROOT={result.out_root} c2f serve   then open http://127.0.0.1:8000/",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# The demo


def _pick_user(user_ids: np.ndarray, wanted: str | None) -> str:
    if wanted is not None:
        return wanted
    return str(user_ids[0])


def run_demo(
    dataset_uri: str | None,
    out_root: str,
    method: str = "c2f",
    *,
    params: Mapping[str, Any] | None = None,
    user_id: str | None = None,
    n: int = 10,
    data_dir: str | None = None,
    echo: Callable[[str], None] | None = print,
    progress: Callable[[dict], None] | None = None,
) -> DemoResult:
    """Train on ``dataset_uri`` (or the bundled synthetic dataset), serve in-process, print a recommendation.

    ``params`` override :data:`DEMO_PARAMS` (any :class:`~contract.config.TrainConfig` field). The synthetic dataset is
    written to ``data_dir`` (default ``<out_root>/demo-data``). ``echo`` receives the report (``None``: silent).
    Returns a :class:`DemoResult`.
    """
    with warnings.catch_warnings():  # starlette's TestClient warns about its httpx backend; irrelevant here
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from c2f.contract.config import TrainConfig
    from c2f.service.main import create_app
    from c2f.service.settings import Settings
    from c2f.trainer.pipeline import train_and_publish

    out = Path(out_root)
    out.mkdir(parents=True, exist_ok=True)
    genres: dict[str, str] = {}
    if dataset_uri is None:
        directory = Path(data_dir) if data_dir is not None else out / "demo-data"
        synthetic = write_synthetic_dataset(directory)
        dataset_uri, genres = str(synthetic.path), synthetic.genre_of_user
        if echo is not None:
            echo(f"wrote the synthetic dataset to {dataset_uri}")
    values = {**DEMO_PARAMS, **dict(params or {}), "method": method}
    config = TrainConfig.from_dict(values)

    stages_seen: list[str] = []

    def on_progress(event: dict) -> None:
        if progress is not None:
            progress(event)
            return
        stage = str(event.get("stage"))
        if echo is not None and stage not in stages_seen:
            stages_seen.append(stage)
            echo(f"  stage: {stage}  ({event.get('elapsed') or 0:.0f} s)")

    if echo is not None:
        echo(f"training {method} on {dataset_uri} ...")
    started = time.perf_counter()
    published = train_and_publish(dataset_uri, config, str(out), progress=on_progress)
    seconds = time.perf_counter() - started

    settings = Settings(artifact_root=str(out), reload_seconds=0)
    app = create_app(settings)
    with TestClient(app) as client:
        user_ids = _user_ids(published.path)
        user = _pick_user(user_ids, user_id)
        rec = client.get(f"/recommend/{user}", params={"n": n})
        rec.raise_for_status()
        fp = client.get("/footprint")
        fp.raise_for_status()
    result = DemoResult(
        dataset_uri=dataset_uri,
        out_root=str(out),
        version=published.version,
        user_id=user,
        recommendation=rec.json(),
        footprint=_footprint_body(fp.json()),
        manifest=published.manifest,
        seconds=seconds,
        genre=genres.get(user),
    )
    if echo is not None:
        echo(format_report(result))
    return result


def _user_ids(version_dir: Path) -> np.ndarray:
    with np.load(version_dir / "model.npz", allow_pickle=False) as npz:
        return np.asarray(npz["user_ids"])


def _footprint_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """/footprint may wrap the footprint dict (``{"model_version": ..., "footprint": {...}}``) or return it bare."""
    inner = body.get("footprint")
    return dict(inner) if isinstance(inner, Mapping) else dict(body)
