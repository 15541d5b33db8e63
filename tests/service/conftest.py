from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.main import create_app
from service.settings import Settings


@pytest.fixture
def artifact_root(tmp_path: Path) -> Path:
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
