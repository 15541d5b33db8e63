"""THE model artifact format: atomic publish, verified load, version listing.

An artifact root holds immutable version directories and a pointer file::

    ROOT/versions/<YYYYMMDDTHHMMSSffffffZ-method>/manifest.json
                                                  model.npz     (np.savez; loaded with allow_pickle=False)
                                                  curve.png ... (optional extra files)
    ROOT/LATEST                                   (the current version name, written last)

Publishing writes into ``ROOT/.tmp-<random>/``, fsyncs every file and the directory, renames it into
``versions/``, then replaces ``LATEST`` (temp file, fsync, ``os.replace``).  A reader therefore sees either the
old version or the complete new one, never a partial directory.  numpy only: no torch, no pickle.

Which arrays a version holds is its method's spec (:mod:`contract.methods`); the manifest is
:class:`contract.manifest.Manifest`; sizes are :func:`contract.footprint.footprint`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from c2f.contract.attributes import check_attribute_arrays
from c2f.contract.footprint import footprint
from c2f.contract.manifest import FileEntry, Footprint, Manifest
from c2f.contract.methods import METHODS, SHAPE_KEYS, MethodError, MethodSpec, get_spec
from c2f.contract.reconstruct import check_csr

SCHEMA_VERSION = 1
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
VERSIONS_DIR = "versions"
TMP_PREFIX = ".tmp-"

VERSION_PATTERN = rf"^[0-9]{{8}}T[0-9]{{12}}Z-({'|'.join(METHODS)})$"
"""A version directory name: UTC timestamp and method (registered methods only)."""
_VERSION_RE = re.compile(VERSION_PATTERN)
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


class ArtifactError(ValueError):
    """An artifact cannot be published or loaded; the message says which file and what is wrong."""


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified model version.  Arrays are read-only; share the object freely between threads."""

    path: Path
    manifest: Manifest
    arrays: Mapping[str, np.ndarray] = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.manifest.model_version)

    @property
    def method(self) -> str:
        return self.manifest.method

    @property
    def spec(self) -> MethodSpec:
        return get_spec(self.manifest.method)

    @property
    def n_users(self) -> int:
        return int(self.arrays["user_ids"].shape[0])

    @property
    def n_items(self) -> int:
        return int(self.arrays["item_ids"].shape[0])

    @property
    def n_entities(self) -> int:
        return self.n_users + self.n_items

    @cached_property
    def d(self) -> int:
        return int(self.arrays[self.spec.table].shape[1])

    @cached_property
    def footprint(self) -> Footprint:
        """The footprint computed from the arrays as loaded (see :func:`contract.footprint.footprint`)."""
        return footprint(self.arrays, self.method)

    def holding(self, names: Collection[str]) -> Artifact:
        """This version holding only the arrays in ``names``: what a server keeps once its scorer holds its own
        references, so arrays no serving mode reads (ud's layer-0 E, legcf's trained S^c and E^c, a full table
        served from codes) are freed. ``d`` and ``footprint`` stay those of every array as loaded."""
        held = Artifact(self.path, self.manifest, {n: a for n, a in self.arrays.items() if n in names})
        held.__dict__.update(d=self.d, footprint=self.footprint)  # cached_property's own cache
        return held


def required_arrays(method: str) -> dict[str, tuple[str, int | None, tuple[str | None, ...]]]:
    """The arrays a ``method`` artifact must contain, with their dtype kind/itemsize and symbolic shape."""
    try:
        spec = get_spec(method)
    except MethodError as exc:
        raise ArtifactError(str(exc)) from None
    return {name: (a.kind, a.itemsize, a.shape) for name, a in spec.required_arrays().items()}


# --------------------------------------------------------------------------------------------------------------
# Paths and versions
# --------------------------------------------------------------------------------------------------------------
def version_path(root: str | os.PathLike[str], version: str) -> Path:
    """The directory of ``version`` under ``root`` (the name is checked, so it cannot escape the root)."""
    if not _VERSION_RE.fullmatch(version):
        raise ArtifactError(f"invalid version name {version!r}")
    return Path(root) / VERSIONS_DIR / version


def list_versions(root: str | os.PathLike[str]) -> list[str]:
    """Published version names, oldest first (names sort by time).  Temp directories are never listed."""
    vdir = Path(root) / VERSIONS_DIR
    try:
        names = [p.name for p in vdir.iterdir() if p.is_dir() and _VERSION_RE.fullmatch(p.name)]
    except FileNotFoundError:
        return []
    return sorted(names)


def latest_version(root: str | os.PathLike[str]) -> str | None:
    """The version named by ``ROOT/LATEST``, or None when nothing was published yet.

    Raises ArtifactError when the pointer exists but does not name a valid version directory.
    """
    pointer = Path(root) / LATEST_FILE
    try:
        text = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _VERSION_RE.fullmatch(text):
        raise ArtifactError(f"{pointer} does not hold a valid version name: {text[:80]!r}")
    if not (Path(root) / VERSIONS_DIR / text).is_dir():
        raise ArtifactError(f"{pointer} names version {text} but {VERSIONS_DIR}/{text} does not exist")
    return text


def make_version_name(method: str, when: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSffffffZ-<method>`` in UTC."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%S%f}Z-{method}"


# --------------------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------------------
def as_manifest(manifest: Manifest | Mapping[str, Any], where: str = "manifest") -> Manifest:
    """``manifest`` as a :class:`Manifest` (a mapping is validated; ArtifactError naming ``where`` if invalid)."""
    if isinstance(manifest, Manifest):
        return manifest
    try:
        return Manifest.model_validate(dict(manifest))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'manifest'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ArtifactError(f"{where} is invalid: {problems}") from None


def validate_arrays(arrays: Mapping[str, np.ndarray], manifest: Manifest | Mapping[str, Any]) -> dict[str, int]:
    """Check names, dtypes, shapes, index ranges and finiteness for the manifest's method; return the dims."""
    manifest = as_manifest(manifest)
    try:
        spec = get_spec(manifest.method)
        return _validate(arrays, manifest, spec)
    except (MethodError, ValueError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(str(exc)) from None


def _validate(arrays: Mapping[str, np.ndarray], manifest: Manifest, spec: MethodSpec) -> dict[str, int]:
    required = spec.required_arrays()
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise ArtifactError(f"{spec.name} artifact is missing arrays: {', '.join(missing)}")
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise ArtifactError(f"array {name!r} is a {type(arr).__name__}, not a numpy array")
        if arr.dtype.kind == "O":
            raise ArtifactError(f"array {name!r} has dtype object (pickle is not allowed)")
    dims = spec.dims(arrays)
    for name, want in spec.present_arrays(arrays).items():
        arr = arrays[name]
        shape = want.shape
        if not want.accepts(arr.dtype):
            raise ArtifactError(f"array {name!r} has dtype {arr.dtype}, expected {want.expected()}")
        if arr.ndim != len(shape):
            raise ArtifactError(f"array {name!r} has {arr.ndim} dimensions, expected {len(shape)}")
        for axis, sym in enumerate(shape):
            if sym is not None and arr.shape[axis] != dims[sym]:
                raise ArtifactError(f"array {name!r} has shape {arr.shape}, expected {sym}={dims[sym]} on axis {axis}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ArtifactError(f"array {name!r} contains NaN or infinite values")
    check_csr(arrays, "graph", dims["n_users"], dims["n_items"])
    check_csr(arrays, "heldout", dims["n_users"], dims["n_items"])
    spec.check_arrays(arrays, dims)
    spec.check_served_pq(arrays, dims)
    check_attribute_arrays(arrays)
    declared = manifest.shape
    for key in SHAPE_KEYS:
        value = getattr(declared, key)
        if key in dims and value is not None and int(value) != dims[key]:
            raise ArtifactError(f"manifest shape.{key}={value} but the arrays give {dims[key]}")
    return dims


# --------------------------------------------------------------------------------------------------------------
# Publish
# --------------------------------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"manifest value of type {type(obj).__name__} is not JSON serialisable")


def _manifest_bytes(manifest: Manifest) -> bytes:
    return json.dumps(manifest.to_json_dict(), indent=2, default=_json_default).encode()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_latest(root: Path, version: str) -> None:
    tmp = root / f".{LATEST_FILE}.tmp-{secrets.token_hex(6)}"
    try:
        _write_synced(tmp, (version + "\n").encode())
        os.replace(tmp, root / LATEST_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(root)


def publish(
    root: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    manifest: Manifest | Mapping[str, Any],
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Atomically publish a new version under ``root`` and point ``LATEST`` at it; return the version name.

    ``manifest`` (a :class:`Manifest` or a mapping validated as one; not modified) must hold ``method``;
    ``schema_version``, ``model_version``, ``created_at``, ``files`` and
    ``footprint`` are filled in (missing ``shape`` entries are filled from the arrays).  The arrays are validated
    first, exactly as :func:`load_artifact` would, so an unloadable artifact is never published.
    """
    root_path = Path(root)
    extra_files = dict(extra_files or {})
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    full = as_manifest(manifest).model_copy(deep=True)
    method = full.method
    if method not in METHODS:
        raise ArtifactError(f"manifest method must be one of {', '.join(METHODS)}, got {method!r}")
    dims = validate_arrays(arrays, full)
    for name in extra_files:
        if not _FILE_NAME_RE.match(name) or name in (MODEL_FILE, MANIFEST_FILE):
            raise ArtifactError(f"invalid extra file name {name!r}")

    (root_path / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
    tmp = root_path / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    tmp.mkdir()
    try:
        files: dict[str, FileEntry] = {}
        with open(tmp / MODEL_FILE, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        for name, data in extra_files.items():
            _write_synced(tmp / name, bytes(data))
        for name in [MODEL_FILE, *extra_files]:
            p = tmp / name
            files[name] = FileEntry(bytes=p.stat().st_size, sha256=_sha256_file(p))

        when = datetime.now(UTC)
        version = make_version_name(method, when)
        while (root_path / VERSIONS_DIR / version).exists():
            when += timedelta(microseconds=1)
            version = make_version_name(method, when)
        full.schema_version = SCHEMA_VERSION
        full.model_version = version
        full.created_at = when.isoformat().replace("+00:00", "Z")
        for key in SHAPE_KEYS:
            if key in dims and getattr(full.shape, key) is None:
                setattr(full.shape, key, dims[key])
        full.footprint = footprint(arrays, method)
        full.files = files
        _write_synced(tmp / MANIFEST_FILE, _manifest_bytes(full))
        _fsync_dir(tmp)

        for attempt in range(100):
            target = root_path / VERSIONS_DIR / version
            try:
                os.rename(tmp, target)
                break
            except OSError:
                if attempt == 99 or not target.exists():
                    raise
                # Another publisher took this name in the same microsecond: bump the name and retry.
                when += timedelta(microseconds=1)
                version = make_version_name(method, when)
                full.model_version = version
                _write_synced(tmp / MANIFEST_FILE, _manifest_bytes(full))
                _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root_path / VERSIONS_DIR)
    _write_latest(root_path, version)
    return version


# --------------------------------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------------------------------
def _read_manifest_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse ``<version dir>/manifest.json`` (ArtifactError when missing or not a JSON object)."""
    mpath = Path(path) / MANIFEST_FILE
    try:
        raw = mpath.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{MANIFEST_FILE} not found in {path}") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {MANIFEST_FILE} in {path}: {exc}") from exc
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST_FILE} in {path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{MANIFEST_FILE} in {path} is not a JSON object")
    return manifest


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The validated manifest of the version directory ``path`` (ArtifactError when missing or invalid)."""
    return as_manifest(_read_manifest_json(path), f"{MANIFEST_FILE} in {path}")


def _verify_files(vdir: Path, files: Mapping[str, Any], verify: bool) -> None:
    for name, info in files.items():
        if not _FILE_NAME_RE.match(name):
            raise ArtifactError(f"manifest lists an invalid file name {name!r}")
        p = vdir / name
        if not p.is_file():
            raise ArtifactError(f"{name} is listed in the manifest but missing from {vdir}")
        if not verify:
            continue
        if not isinstance(info, Mapping) or "bytes" not in info or "sha256" not in info:
            raise ArtifactError(f"manifest entry for {name} lacks 'bytes' or 'sha256'")
        size = p.stat().st_size
        if size != int(info["bytes"]):
            raise ArtifactError(
                f"size mismatch for {name}: manifest says {info['bytes']} bytes, file has {size} "
                "(truncated or partially written?)"
            )
        digest = _sha256_file(p)
        if digest != info["sha256"]:
            raise ArtifactError(
                f"checksum mismatch for {name}: manifest sha256 {str(info['sha256'])[:16]}..., "
                f"file sha256 {digest[:16]}... (corrupted?)"
            )


def load_artifact(path: str | os.PathLike[str], verify: bool = True) -> Artifact:
    """Load and check one version directory.

    Checks the schema version, the method, every listed file's size and sha256 (when ``verify``), then loads
    ``model.npz`` with ``allow_pickle=False`` and validates the arrays (names, dtypes, shapes, index ranges).
    Every problem raises :class:`ArtifactError` naming the file and the problem.
    """
    vdir = Path(path)
    if not vdir.is_dir():
        raise ArtifactError(f"artifact directory {vdir} does not exist")
    raw = _read_manifest_json(vdir)
    schema = raw.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise ArtifactError(f"unsupported schema_version {schema!r} in {vdir} (this service reads {SCHEMA_VERSION})")
    method = raw.get("method")
    if method not in METHODS:
        raise ArtifactError(f"manifest in {vdir} has unknown method {method!r}")
    if not isinstance(raw.get("model_version"), str):
        raise ArtifactError(f"manifest in {vdir} has no model_version")
    files = raw.get("files")
    if not isinstance(files, Mapping) or MODEL_FILE not in files:
        raise ArtifactError(f"manifest in {vdir} does not list {MODEL_FILE} under 'files'")
    _verify_files(vdir, files, verify)
    manifest = as_manifest(raw, f"{MANIFEST_FILE} in {vdir}")

    try:
        with np.load(vdir / MODEL_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ArtifactError(f"cannot read {MODEL_FILE} in {vdir}: {exc}") from exc
    validate_arrays(arrays, manifest)
    for arr in arrays.values():
        arr.setflags(write=False)
    return Artifact(path=vdir, manifest=manifest, arrays=arrays)


def load_latest(root: str | os.PathLike[str], verify: bool = True) -> Artifact | None:
    """Load the version ``LATEST`` points to (None when nothing was published)."""
    version = latest_version(root)
    return None if version is None else load_artifact(version_path(root, version), verify=verify)
