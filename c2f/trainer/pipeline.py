"""One call from a dataset URI to a published artifact version: load (plus any extra interactions, such as the
service's recorded events: :mod:`trainer.data.extra`), train, export, publish."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from c2f.contract.artifact import version_path
from c2f.contract.config import TrainConfig
from c2f.contract.manifest import Manifest
from c2f.trainer.data import InteractionData, load_dataset
from c2f.trainer.data.extra import ExtraInteractions, add_interactions
from c2f.trainer.export import export
from c2f.trainer.fit import Progress
from c2f.trainer.train import train


@dataclass
class PublishedModel:
    """A version that ``train_and_publish`` wrote into the artifact root."""

    version: str
    path: Path
    manifest: Manifest


def train_and_publish(
    dataset_uri: str,
    config: TrainConfig,
    out_root: str | Path,
    *,
    progress: Progress | None = None,
    storage_options: dict[str, Any] | None = None,
    extra_interactions: Callable[[InteractionData], ExtraInteractions | None] | None = None,
) -> PublishedModel:
    """Load ``dataset_uri``, train ``config.method``, publish a new version into ``out_root`` (atomically).

    ``extra_interactions`` is called with the loaded dataset and may return pairs to train on besides its own (the
    job's recorded events); they join the training split (:func:`trainer.data.extra.add_interactions`) and what
    they changed is published in ``manifest.info["events"]``.

    Under ``torchrun`` every rank trains (see :mod:`trainer.distributed`); rank 0 alone exports and publishes, and
    every rank returns the version it published.
    """
    started = time.perf_counter()

    def report(stage: str) -> None:
        if progress is not None:
            progress(
                {
                    "stage": stage,
                    "epoch": 0,
                    "loss": None,
                    "valid": None,
                    "elapsed": time.perf_counter() - started,
                }
            )

    report("loading")
    t0 = time.perf_counter()
    data = load_dataset(
        dataset_uri,
        seed=config.seed,
        valid_fraction=config.valid_fraction,
        valid_from=config.valid_from,
        storage_options=storage_options,
    )
    extra = extra_interactions(data) if extra_interactions is not None else None
    included = None
    if extra is not None:
        data, included = add_interactions(data, extra)
    load_seconds = time.perf_counter() - t0
    trained = train(data, config, progress)
    trained.timings["load_seconds"] = load_seconds
    if included is not None:
        trained.info["events"] = included
    report("export")
    distributed = trained.distributed
    published: tuple[str, Manifest] | None = None
    if distributed is None or distributed.is_main:
        published = export(trained, data, out_root)
    if distributed is not None:
        published = distributed.share(published)
    assert published is not None
    version, manifest = published
    return PublishedModel(version=version, path=version_path(out_root, version), manifest=manifest)
