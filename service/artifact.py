"""THE model artifact format: atomic publish, verified load, version listing and the footprint report.

An artifact root holds immutable version directories and a pointer file::

    ROOT/versions/<YYYYMMDDTHHMMSSffffffZ-method>/manifest.json
                                                  model.npz     (np.savez; loaded with allow_pickle=False)
                                                  curve.png ... (optional extra files)
    ROOT/LATEST                                   (the current version name, written last)

Publishing writes into ``ROOT/.tmp-<random>/``, fsyncs every file and the directory, renames it into
``versions/``, then replaces ``LATEST`` (temp file, fsync, ``os.replace``).  A reader therefore sees either the
old version or the complete new one, never a partial directory.  numpy only: no torch, no pickle.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
METHODS = ("ud", "legcf", "c2f")
MODEL_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "LATEST"
VERSIONS_DIR = "versions"
TMP_PREFIX = ".tmp-"

_VERSION_RE = re.compile(r"^\d{8}T\d{12}Z-(ud|legcf|c2f)$")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = 1 << 20


class ArtifactError(ValueError):
    """An artifact cannot be published or loaded; the message says which file and what is wrong."""


# --------------------------------------------------------------------------------------------------------------
# Array schema: name -> (dtype kind, itemsize or None for any, shape spec).  Shape entries are ints, names of
# dimensions resolved from the arrays themselves (see _dims), or None for "any length".
# --------------------------------------------------------------------------------------------------------------
_COMMON: dict[str, tuple[str, int | None, tuple[str | None, ...]]] = {
    "user_ids": ("U", None, ("n_users",)),
    "item_ids": ("U", None, ("n_items",)),
    "graph_indptr": ("i", 8, ("n_users+1",)),
    "graph_indices": ("i", 4, (None,)),
    "heldout_indptr": ("i", 8, ("n_users+1",)),
    "heldout_indices": ("i", 4, (None,)),
}
_UD: dict[str, tuple[str, int | None, tuple[str | None, ...]]] = {
    "H_full": ("f", 4, ("N", "d")),
    "E": ("f", 4, ("N", "d")),
}
_META: dict[str, tuple[str, int | None, tuple[str | None, ...]]] = {
    "S_c_idx": ("i", 4, ("N", "t_c")),
    "S_c_w": ("f", 4, ("N", "t_c")),
    "S_c_idx_served": ("i", 4, ("N", "t_c")),
    "S_c_w_served": ("f", 4, ("N", "t_c")),
    "H_meta": ("f", 4, ("m_c", "d")),
    "E_c": ("f", 4, ("m_c", "d")),
}
_C2F: dict[str, tuple[str, int | None, tuple[str | None, ...]]] = {
    "S_r_idx": ("i", 4, ("m_c", "t_r")),
    "S_r_w": ("f", 4, ("m_c", "t_r")),
    "E_r_indptr": ("i", 8, ("m_r+1",)),
    "E_r_indices": ("i", 4, (None,)),
    "E_r_data": ("f", 4, (None,)),
}


def required_arrays(method: str) -> dict[str, tuple[str, int | None, tuple[str | None, ...]]]:
    """The arrays a ``method`` artifact must contain, with their dtype kind/itemsize and symbolic shape."""
    if method not in METHODS:
        raise ArtifactError(f"unknown method {method!r} (expected one of {', '.join(METHODS)})")
    spec = dict(_COMMON)
    if method == "ud":
        spec.update(_UD)
    else:
        spec.update(_META)
        if method == "c2f":
            spec.update(_C2F)
    return spec


@dataclass(frozen=True)
class Artifact:
    """A loaded, verified model version.  Arrays are read-only; share the object freely between threads."""

    path: Path
    manifest: dict[str, Any]
    arrays: Mapping[str, np.ndarray] = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.manifest["model_version"])

    @property
    def method(self) -> str:
        return str(self.manifest["method"])

    @property
    def n_users(self) -> int:
        return int(self.arrays["user_ids"].shape[0])

    @property
    def n_items(self) -> int:
        return int(self.arrays["item_ids"].shape[0])

    @property
    def n_entities(self) -> int:
        return self.n_users + self.n_items

    @property
    def d(self) -> int:
        table = self.arrays["H_full"] if self.method == "ud" else self.arrays["H_meta"]
        return int(table.shape[1])

    @property
    def footprint(self) -> dict[str, Any]:
        """The footprint recomputed from the arrays as loaded (see :func:`footprint`)."""
        return footprint(self.arrays, self.manifest)


# --------------------------------------------------------------------------------------------------------------
# Paths and versions
# --------------------------------------------------------------------------------------------------------------
def version_path(root: str | os.PathLike[str], version: str) -> Path:
    """The directory of ``version`` under ``root`` (the name is checked, so it cannot escape the root)."""
    if not _VERSION_RE.match(version):
        raise ArtifactError(f"invalid version name {version!r}")
    return Path(root) / VERSIONS_DIR / version


def list_versions(root: str | os.PathLike[str]) -> list[str]:
    """Published version names, oldest first (names sort by time).  Temp directories are never listed."""
    vdir = Path(root) / VERSIONS_DIR
    try:
        names = [p.name for p in vdir.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
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
    if not _VERSION_RE.match(text):
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
def _dims(arrays: Mapping[str, np.ndarray], method: str) -> dict[str, int]:
    def first(name: str, axis: int) -> int:
        arr = arrays.get(name)
        if arr is None or arr.ndim <= axis:
            raise ArtifactError(f"array {name!r} is missing or has too few dimensions")
        return int(arr.shape[axis])

    dims = {"n_users": first("user_ids", 0), "n_items": first("item_ids", 0)}
    dims["N"] = dims["n_users"] + dims["n_items"]
    dims["n_users+1"] = dims["n_users"] + 1
    if method == "ud":
        dims["d"] = first("H_full", 1)
    else:
        dims["m_c"] = first("H_meta", 0)
        dims["d"] = first("H_meta", 1)
        dims["t_c"] = first("S_c_idx", 1)
        if method == "c2f":
            dims["t_r"] = first("S_r_idx", 1)
            dims["m_r+1"] = first("E_r_indptr", 0)
            dims["m_r"] = dims["m_r+1"] - 1
    return dims


def _check_csr(arrays: Mapping[str, np.ndarray], prefix: str, n_rows: int, n_cols: int) -> None:
    indptr, indices = arrays[f"{prefix}_indptr"], arrays[f"{prefix}_indices"]
    if indptr.shape[0] != n_rows + 1:
        raise ArtifactError(f"{prefix}_indptr has length {indptr.shape[0]}, expected {n_rows + 1}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise ArtifactError(
            f"{prefix}_indptr is not a valid CSR row pointer (must start at 0, be non-decreasing and end at "
            f"len({prefix}_indices)={indices.shape[0]})"
        )
    if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        raise ArtifactError(f"{prefix}_indices has values outside [0, {n_cols})")


def validate_arrays(arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> dict[str, int]:
    """Check names, dtypes, shapes, index ranges and finiteness for ``manifest['method']``; return the dims."""
    method = manifest.get("method")
    if not isinstance(method, str):
        raise ArtifactError("manifest has no 'method'")
    spec = required_arrays(method)
    missing = sorted(set(spec) - set(arrays))
    if missing:
        raise ArtifactError(f"{method} artifact is missing arrays: {', '.join(missing)}")
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            raise ArtifactError(f"array {name!r} is a {type(arr).__name__}, not a numpy array")
        if arr.dtype.kind == "O":
            raise ArtifactError(f"array {name!r} has dtype object (pickle is not allowed)")
    dims = _dims(arrays, method)
    for name, (kind, itemsize, shape) in spec.items():
        arr = arrays[name]
        if arr.dtype.kind != kind or (itemsize is not None and arr.dtype.itemsize != itemsize):
            want = {"U": "str (<U)", "i": f"int{8 * (itemsize or 0)}", "f": f"float{8 * (itemsize or 0)}"}[kind]
            raise ArtifactError(f"array {name!r} has dtype {arr.dtype}, expected {want}")
        if arr.ndim != len(shape):
            raise ArtifactError(f"array {name!r} has {arr.ndim} dimensions, expected {len(shape)}")
        for axis, sym in enumerate(shape):
            if sym is not None and arr.shape[axis] != dims[sym]:
                raise ArtifactError(f"array {name!r} has shape {arr.shape}, expected {sym}={dims[sym]} on axis {axis}")
        if kind == "f" and not np.all(np.isfinite(arr)):
            raise ArtifactError(f"array {name!r} contains NaN or infinite values")
    n_users, n_items = dims["n_users"], dims["n_items"]
    _check_csr(arrays, "graph", n_users, n_items)
    _check_csr(arrays, "heldout", n_users, n_items)
    if method != "ud":
        for name in ("S_c_idx", "S_c_idx_served"):
            idx = arrays[name]
            if idx.size and (idx.min() < 0 or idx.max() >= dims["m_c"]):
                raise ArtifactError(f"{name} has values outside [0, m_c={dims['m_c']})")
    if method == "c2f":
        if dims["m_r"] < 0:
            raise ArtifactError("E_r_indptr must have at least one entry")
        if arrays["E_r_data"].shape != arrays["E_r_indices"].shape:
            raise ArtifactError("E_r_data and E_r_indices have different lengths")
        _check_csr(arrays, "E_r", dims["m_r"], dims["d"])
        ridx = arrays["S_r_idx"]
        if ridx.size and (ridx.min() < 0 or ridx.max() >= dims["m_r"]):
            raise ArtifactError(f"S_r_idx has values outside [0, m_r={dims['m_r']})")
    declared = manifest.get("shape")
    if isinstance(declared, Mapping):
        for key in ("n_users", "n_items", "d", "m_c", "t_c", "m_r", "t_r"):
            if key in dims and declared.get(key) is not None and int(declared[key]) != dims[key]:
                raise ArtifactError(f"manifest shape.{key}={declared[key]} but the arrays give {dims[key]}")
    return dims


# --------------------------------------------------------------------------------------------------------------
# Footprint
# --------------------------------------------------------------------------------------------------------------
_COMPONENTS: dict[str, tuple[str, ...]] = {
    "id_maps": ("user_ids", "item_ids"),
    "graph": ("graph_indptr", "graph_indices", "heldout_indptr", "heldout_indices"),
    "full_table": ("H_full",),
    "layer0_table": ("E",),
    "S_c": ("S_c_idx", "S_c_w", "S_c_idx_served", "S_c_w_served"),
    "codebooks": ("H_meta", "E_c"),
    "S_r": ("S_r_idx", "S_r_w"),
    "E_r": ("E_r_indptr", "E_r_indices", "E_r_data"),
}
_NON_EMBEDDING = ("id_maps", "graph")


def params_paper(
    method: str, n_entities: int, d: int, *, m_c: int = 0, t_c: int = 0, m_r: int = 0, t_r: int = 0
) -> int:
    """Embedding-layer parameters in the paper's convention (Table 3).

    ud: N·d;  legcf: t_c·N + m_c·d;  c2f: t_c·N + m_c·d + m_r·d + t_r·m_c (E^r counted dense, as in Table 3).
    """
    if method == "ud":
        return n_entities * d
    if method == "legcf":
        return t_c * n_entities + m_c * d
    if method == "c2f":
        return t_c * n_entities + m_c * d + m_r * d + t_r * m_c
    raise ArtifactError(f"unknown method {method!r}")


def footprint(arrays: Mapping[str, np.ndarray], manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Sizes of a model: bytes per component and per array as stored, paper-convention params, ratios.

    Ratios are "times smaller than the float32 full table" (full / compressed; 1.0 for ud):
    ``compression_ratio_params = N·d / params_paper`` and
    ``compression_ratio_bytes = full_table_bytes / embedding_bytes`` where ``embedding_bytes`` counts every
    stored embedding array (everything except id maps and the seen-items graph).  ``compressed_serving_bytes``
    is what compressed-mode scoring reads (S_c_idx_served, S_c_w_served, H_meta).
    """
    method = str(manifest["method"])
    dims = _dims(arrays, method)
    per_array = {name: int(arr.nbytes) for name, arr in arrays.items()}
    components: dict[str, int] = {}
    listed: set[str] = set()
    for comp, names in _COMPONENTS.items():
        present = [n for n in names if n in per_array]
        listed.update(present)
        if present:
            components[comp] = sum(per_array[n] for n in present)
    other = sum(b for n, b in per_array.items() if n not in listed)
    if other:
        components["other"] = other
    n_entities, d = dims["N"], dims["d"]
    m_c, t_c, m_r, t_r = (dims.get(k, 0) for k in ("m_c", "t_c", "m_r", "t_r"))
    params = params_paper(method, n_entities, d, m_c=m_c, t_c=t_c, m_r=m_r, t_r=t_r)
    full_params = n_entities * d
    full_bytes = full_params * 4
    embedding_bytes = sum(b for c, b in components.items() if c not in _NON_EMBEDDING)
    out: dict[str, Any] = {
        "method": method,
        "n_users": dims["n_users"],
        "n_items": dims["n_items"],
        "n_entities": n_entities,
        "d": d,
        "m_c": m_c,
        "t_c": t_c,
        "m_r": m_r,
        "t_r": t_r,
        "components": components,
        "arrays": per_array,
        "total_bytes": sum(per_array.values()),
        "embedding_bytes": embedding_bytes,
        "params_paper": params,
        "full_table_params": full_params,
        "full_table_bytes": full_bytes,
        "compression_ratio_params": full_params / params if params else None,
        "compression_ratio_bytes": full_bytes / embedding_bytes if embedding_bytes else None,
    }
    if method == "c2f":
        nnz = int(arrays["E_r_data"].shape[0])
        out["e_r_nnz"] = nnz
        out["e_r_density"] = nnz / (m_r * d) if m_r * d else 0.0
        out["params_sparse_E_r"] = t_c * n_entities + m_c * d + nnz + t_r * m_c
    else:
        out["e_r_nnz"] = 0
    if method != "ud":
        serving = sum(per_array[n] for n in ("S_c_idx_served", "S_c_w_served", "H_meta"))
        out["compressed_serving_bytes"] = serving
        out["compression_ratio_serving_bytes"] = full_bytes / serving if serving else None
    return out


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
    manifest: dict[str, Any],
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Atomically publish a new version under ``root`` and point ``LATEST`` at it; return the version name.

    ``manifest`` must hold ``method``; ``schema_version``, ``model_version``, ``created_at``, ``files`` and
    ``footprint`` are filled in (missing ``shape`` entries are filled from the arrays).  The arrays are validated
    first, exactly as :func:`load_artifact` would, so an unloadable artifact is never published.
    """
    root_path = Path(root)
    extra_files = dict(extra_files or {})
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    method = manifest.get("method")
    if method not in METHODS:
        raise ArtifactError(f"manifest method must be one of {', '.join(METHODS)}, got {method!r}")
    dims = validate_arrays(arrays, manifest)
    for name in extra_files:
        if not _FILE_NAME_RE.match(name) or name in (MODEL_FILE, MANIFEST_FILE):
            raise ArtifactError(f"invalid extra file name {name!r}")

    (root_path / VERSIONS_DIR).mkdir(parents=True, exist_ok=True)
    tmp = root_path / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    tmp.mkdir()
    try:
        files: dict[str, dict[str, Any]] = {}
        with open(tmp / MODEL_FILE, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        for name, data in extra_files.items():
            _write_synced(tmp / name, bytes(data))
        for name in [MODEL_FILE, *extra_files]:
            p = tmp / name
            files[name] = {"bytes": p.stat().st_size, "sha256": _sha256_file(p)}

        when = datetime.now(UTC)
        version = make_version_name(method, when)
        while (root_path / VERSIONS_DIR / version).exists():
            when += timedelta(microseconds=1)
            version = make_version_name(method, when)
        full = dict(manifest)
        full["schema_version"] = SCHEMA_VERSION
        full["model_version"] = version
        full["created_at"] = when.isoformat().replace("+00:00", "Z")
        shape = dict(full.get("shape") or {})
        for key in ("n_users", "n_items", "d", "m_c", "t_c", "m_r", "t_r"):
            if key in dims:
                shape.setdefault(key, dims[key])
        full["shape"] = shape
        full["footprint"] = footprint(arrays, full)
        full["files"] = files
        _write_synced(tmp / MANIFEST_FILE, json.dumps(full, indent=2, default=_json_default).encode())
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
                full["model_version"] = version
                _write_synced(tmp / MANIFEST_FILE, json.dumps(full, indent=2, default=_json_default).encode())
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
def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
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
    manifest = read_manifest(vdir)
    schema = manifest.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise ArtifactError(f"unsupported schema_version {schema!r} in {vdir} (this service reads {SCHEMA_VERSION})")
    method = manifest.get("method")
    if method not in METHODS:
        raise ArtifactError(f"manifest in {vdir} has unknown method {method!r}")
    if not isinstance(manifest.get("model_version"), str):
        raise ArtifactError(f"manifest in {vdir} has no model_version")
    files = manifest.get("files")
    if not isinstance(files, Mapping) or MODEL_FILE not in files:
        raise ArtifactError(f"manifest in {vdir} does not list {MODEL_FILE} under 'files'")
    _verify_files(vdir, files, verify)

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
