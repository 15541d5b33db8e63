"""Shared pytest fixtures: the Gowalla dataset (when present) and small planted-community datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import planted_communities, write_interactions_csv, write_lightgcn_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
GOWALLA_DIR = REPO_ROOT.parent / "shared" / "data" / "gowalla"


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
