"""Shared pytest fixtures: the Gowalla dataset (when present) and small planted-community datasets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from c2f.service.main import create_app
from c2f.service.settings import Settings
from c2f.trainer.synthetic import planted_communities, write_interactions_csv, write_lightgcn_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
GOWALLA_DIR = REPO_ROOT.parent / "shared" / "data" / "gowalla"


@pytest.fixture
def artifact_root(tmp_path: Path) -> Path:
    """An empty artifact root in the test's temporary directory."""
    root = tmp_path / "artifacts"
    root.mkdir()
    return root


ClientFactory = Callable[..., Any]


@pytest.fixture
def make_client(artifact_root: Path) -> Iterator[ClientFactory]:
    """``with make_client(**settings) as client:`` runs the app's lifespan (reload polling off by default)."""

    @contextmanager
    def factory(**overrides: Any) -> Iterator[TestClient]:
        values: dict[str, Any] = {"artifact_root": str(artifact_root), "reload_seconds": 0}
        values.update(overrides)
        app = create_app(Settings(**values))
        with TestClient(app, raise_server_exceptions=True) as client:
            yield client

    yield factory


@pytest.fixture(scope="session")
def gowalla_dir() -> Path:
    """``../shared/data/gowalla`` relative to the repository root; skips the test when it is absent."""
    if not (GOWALLA_DIR / "train.txt").is_file():
        pytest.skip(f"Gowalla dataset not found at {GOWALLA_DIR}")
    return GOWALLA_DIR


@pytest.fixture(scope="session")
def synthetic_lightgcn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LightGCN directory (train.txt / test.txt, 20% test per user) of ``planted_communities()`` defaults:
    600 users, 400 items, 8 communities."""
    users, items, _, _ = planted_communities()
    return write_lightgcn_dir(tmp_path_factory.mktemp("synthetic_lightgcn"), users, items)


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``user,item`` CSV with string ids ("u17", "i3") of ``planted_communities()`` defaults."""
    users, items, _, _ = planted_communities()
    return write_interactions_csv(tmp_path_factory.mktemp("synthetic_csv") / "interactions.csv", users, items)
