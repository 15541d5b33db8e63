"""The `c2f` command line: train, serve, worker, demo.

Each command imports its layer inside the command (``trainer`` and torch for train/demo, ``jobs`` and ``service``
for serve/worker), so ``c2f serve`` never imports torch.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from c2f.contract.methods import METHODS

METHOD_HELP = " | ".join(METHODS) + "; none: the default recipe (a d = 64 table served from the items' codes)"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="c2f: compressed ID embeddings, trained and served.")


def _metrics_line(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return "  ".join(f"{k}={metrics[k]:.4f}" for k in ("recall@20", "ndcg@20") if k in metrics)


@app.command()
def train(
    dataset_uri: Annotated[str, typer.Argument(help="Dataset directory/file or URI (file://, http(s)://, s3://).")],
    out: Annotated[
        Path, typer.Option("--out", help="Artifact root: a new version directory is published in it.")
    ] = Path("artifacts"),
    method: Annotated[str | None, typer.Option(help=METHOD_HELP)] = None,  # noqa: UP007
    dim: Annotated[int | None, typer.Option(help="Embedding size d.")] = None,  # noqa: UP007
    layers: Annotated[int | None, typer.Option(help="LightGCN propagation layers L.")] = None,  # noqa: UP007
    epochs: Annotated[int | None, typer.Option(help="Max epochs per phase (early stopping decides).")] = None,  # noqa: UP007
    batch_size: Annotated[int | None, typer.Option(help="Triplets per batch.")] = None,  # noqa: UP007
    lr: Annotated[float | None, typer.Option(help="Adam learning rate (UD and coarse stage).")] = None,  # noqa: UP007
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,  # noqa: UP007
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N")] = None,  # noqa: UP007
    budget: Annotated[
        str | None,  # noqa: UP007
        typer.Option(
            help="Memory budget as a percentage of the float32 full table N·d·4, e.g. 2%: sets the method's size "
            "(ud d, legcf m_c, c2f m_c/m_r, hash B, qr m) to the largest whose embedding bytes fit."
        ),
    ] = None,
    budget_bytes: Annotated[
        str | None,  # noqa: UP007
        typer.Option(
            "--budget-bytes", help="Memory budget in bytes, e.g. 2MB, 1.5MiB or 500000 (instead of --budget)."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,  # noqa: UP007
        typer.Option("--param", "-p", help="Any TrainConfig field as key=value (JSON value), repeatable."),
    ] = None,
) -> None:
    """Train METHOD on DATASET_URI and publish a new artifact version into --out.

    Data-parallel on K GPUs (or K CPU processes): torchrun --nproc-per-node=K --no-python c2f train ...
    """
    from c2f.contract.budget import BudgetError, check_possible, parse_bytes, parse_percent
    from c2f.contract.config import TrainConfig
    from c2f.trainer.pipeline import train_and_publish

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    values: dict = {"method": method}  # None: the default recipe (contract.config.DEFAULT_RECIPE)
    for key, value in {
        "dim": dim,
        "layers": layers,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "device": device,
    }.items():
        if value is not None:
            values[key] = value
    for item in param or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param expects key=value, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        if budget is not None:
            values["budget"] = parse_percent(budget)
        if budget_bytes is not None:
            values["budget_bytes"] = parse_bytes(budget_bytes)
        config = TrainConfig.from_dict(values)
        check_possible(config)  # a budget no dataset allows is refused before the data is loaded
    except (TypeError, ValueError) as error:
        raise typer.BadParameter(str(error)) from error
    from c2f.trainer.distributed import shutdown

    try:
        published = train_and_publish(dataset_uri, config, out)
    except BudgetError as error:  # the budget does not fit this dataset (sized once its N is known)
        shutdown(failed=True)
        raise typer.BadParameter(str(error)) from error
    except BaseException:
        shutdown(failed=True)
        raise
    shutdown()
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return
    metrics = published.manifest.metrics
    typer.echo(f"published {published.version} -> {published.path}")
    typer.echo(f"trained test:           {_metrics_line(metrics.test('trained'))}")
    for mode in metrics.served:
        typer.echo(f"served ({mode:10s}) test: {_metrics_line(metrics.test(mode))}")
    footprint = published.manifest.footprint
    if footprint is not None:
        typer.echo(
            f"params (paper convention): {footprint.params_paper}  "
            f"bytes: {footprint.total_bytes}  full table: {footprint.full_table_bytes}"
        )
    report = published.manifest.budget
    if report is not None:
        typer.echo(
            f"budget: {report.budget_bytes} bytes -> {report.knob}={report.value}, "
            f"{'served' if report.counts == 'served' else 'embedding'} bytes {report.achieved_bytes}"
            + (
                f" (next size up: {report.next_planned_bytes})"
                if report.next_planned_bytes is not None
                else f" ({report.knob} at the largest value tried, {report.knob_max})"
            )
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, help="HTTP server processes on the port (one per core), forked once the model is loaded."),
    ] = 1,
) -> None:
    """Run the HTTP service (C2F_* settings). Without C2F_REDIS_URL an embedded Redis and worker start too."""
    from c2f.jobs.server import serve as run_server
    from c2f.service.settings import Settings

    run_server(host, port, Settings(), processes=workers)


@app.command()
def worker() -> None:
    """Run a training worker on the queue (C2F_REDIS_URL)."""
    from c2f.jobs.worker import run_worker
    from c2f.service.settings import Settings

    run_worker(Settings())


@app.command()
def demo(
    dataset_uri: Annotated[str | None, typer.Argument(help="Dataset URI; default: bundled synthetic data.")] = None,  # noqa: UP007
    out: Annotated[Path, typer.Option("--out", help="Artifact root.")] = Path("artifacts"),
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "c2f",
) -> None:
    """Train on DATASET_URI (or bundled synthetic data), serve in-process, print a recommendation and footprint."""
    from c2f.cli.demo import run_demo

    run_demo(dataset_uri, str(out), method=method)


if __name__ == "__main__":
    app()
