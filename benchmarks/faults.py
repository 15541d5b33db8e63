"""Broken publishes for benchmarks/chaos.py and the reliability suite (tests/reliability).

:func:`publish_faulty` publishes a version that is already broken when ``LATEST`` first names it: it is published
into a staging root next to the artifact root, broken there, moved into ``versions/`` and only then named by
``LATEST`` (breaking a version after ``publish`` has pointed ``LATEST`` at it races the service's poller, which may
load the good files first).  The kinds that name no version write ``LATEST`` only.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.artifacts import build_artifact

# the artifact's files, as docs/artifact.md documents them: ROOT/LATEST names ROOT/versions/<version>/, which holds
# manifest.json (every file's size and sha256) and model.npz (the arrays)
LATEST_FILE = "LATEST"
VERSIONS_DIR = "versions"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.npz"


def flip_bytes(vdir: Path) -> None:
    """One byte of model.npz inverted: the sha256 no longer matches."""
    path = vdir / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(vdir: Path) -> None:
    """model.npz without its last 100 bytes: the size no longer matches."""
    path = vdir / MODEL_FILE
    path.write_bytes(path.read_bytes()[:-100])


def bad_json(vdir: Path) -> None:
    """manifest.json that is not JSON."""
    (vdir / MANIFEST_FILE).write_text("{not json")


def _rewrite_model(vdir: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Apply ``change`` to the arrays and rewrite model.npz *with* a matching size and sha256 in the manifest, so
    only the array checks can refuse it."""
    with np.load(vdir / MODEL_FILE, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    (vdir / MODEL_FILE).write_bytes(data)
    manifest = json.loads((vdir / MANIFEST_FILE).read_text())
    manifest["files"][MODEL_FILE] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (vdir / MANIFEST_FILE).write_text(json.dumps(manifest))


def wrong_shape(vdir: Path) -> None:
    """The served weights lose their last row (valid sha256): a shape mismatch."""

    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays["S_c_w_served"] = arrays["S_c_w_served"][:-1]

    _rewrite_model(vdir, change)


def nan_values(vdir: Path) -> None:
    """A NaN in the codebook (valid sha256)."""

    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays["H_meta"] = arrays["H_meta"].copy()
        arrays["H_meta"][0, 0] = np.nan

    _rewrite_model(vdir, change)


VERSION_FAULTS: dict[str, Callable[[Path], None]] = {
    "flipped_bytes": flip_bytes,
    "truncated": truncate,
    "bad_json": bad_json,
    "wrong_shape": wrong_shape,
    "nan": nan_values,
}
"""Faults applied to a published version's files."""

POINTER_FAULTS: dict[str, str] = {
    "dotdot_latest": "../../outside/20990101T000000000000Z-c2f",
    "missing_version": "20990101T000000000000Z-c2f",
}
"""Faults that are only a bad ``LATEST``: the text written to it."""

FAULTS: tuple[str, ...] = (*VERSION_FAULTS, *POINTER_FAULTS)


def write_latest(root: Path, text: str) -> None:
    """Replace ``root/LATEST`` atomically, as a publisher does."""
    tmp = root / f".{LATEST_FILE}.chaos-{secrets.token_hex(4)}"
    tmp.write_text(text + "\n")
    os.replace(tmp, root / LATEST_FILE)


def publish_faulty(root: str | Path, kind: str, *, seed: int = 0, **kwargs: object) -> str | None:
    """Publish a fixture version broken by ``kind`` (one of :data:`FAULTS`) and point ``LATEST`` at it.

    Returns the broken version's name, or None for a pointer fault (``LATEST`` then names nothing loadable).
    ``kwargs`` go to :func:`benchmarks.artifacts.make_arrays` (sizes).
    """
    root = Path(root)
    if kind in POINTER_FAULTS:
        write_latest(root, POINTER_FAULTS[kind])
        return None
    fault = VERSION_FAULTS[kind]
    staging = root.parent / f".{root.name}-staging-{secrets.token_hex(4)}"
    try:
        version = build_artifact(staging, "c2f", seed=seed, **kwargs)  # type: ignore[arg-type]
        fault(staging / VERSIONS_DIR / version)
        (root / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
        os.rename(staging / VERSIONS_DIR / version, root / VERSIONS_DIR / version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_latest(root, version)
    return version
