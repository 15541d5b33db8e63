"""The `c2f` command line: train, serve, worker, demo. Heavy imports happen inside each command."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="c2f: compressed ID embeddings, trained and served.")
