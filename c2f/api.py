"""The Python API: ``c2f.train``, ``c2f.load`` and the :class:`Model` they return (re-exported by ``c2f``).

Nothing here is a second implementation. Training is :func:`c2f.trainer.pipeline.train_and_publish`, the call
``c2f train`` makes (an in-memory table or matrix is first written to a temporary CSV that the same readers parse);
loading is the service's: :func:`c2f.contract.artifact.load_artifact` (sizes and sha256 verified), the manifest's
version checked against its directory, a :class:`c2f.service.scoring.Recommender` built and smoke-tested; saving is
:func:`c2f.contract.artifact.publish`, the atomic publish the trainer's export uses.

Importing this module imports numpy, pydantic and the contract and service layers, never torch: only
:func:`train` imports the trainer, when it is called.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from c2f.contract.artifact import (
    MANIFEST_FILE,
    MODEL_FILE,
    Artifact,
    ArtifactError,
    latest_version,
    load_artifact,
    publish,
    version_path,
)
from c2f.contract.attributes import UnknownAttribute
from c2f.contract.foldin import DEFAULT_ESTIMATOR, ESTIMATORS
from c2f.contract.foldin import Estimator as FoldInEstimator
from c2f.contract.manifest import Footprint, Manifest
from c2f.service.filters import ItemFilter, WhereSyntaxError, parse_where
from c2f.service.scoring import USER_VECTORS, Recommender, UserVectors

if TYPE_CHECKING:
    from c2f.contract.served import ServingMode

__all__ = ["ArgumentError", "Model", "UnknownIdError", "load", "train"]

_MODES = ("compressed", "exact")
_SHOWN_IDS = 5  # unknown ids named in an error message
_MAX_WHERE_VALUES = 1000  # values in where clauses, all together


class ArgumentError(ValueError):
    """An argument of the Python API is malformed (wrong type, ``n < 1``, unknown training parameter, ...)."""


class UnknownIdError(LookupError):
    """A user or item id the model does not know. ``kind`` is "user" or "item"; ``ids`` lists the unknown ids."""

    def __init__(self, kind: str, ids: list[str]) -> None:
        self.kind = kind
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:_SHOWN_IDS])
        if len(ids) > _SHOWN_IDS:
            shown += f" (+{len(ids) - _SHOWN_IDS} more)"
        super().__init__(f"unknown {kind} id{'s' if len(ids) > 1 else ''}: {shown}")


def _is_scalar_id(value: Any) -> bool:
    return isinstance(value, str | int | np.integer | np.str_) and not isinstance(value, bool)


def _as_id(value: Any, what: str) -> str:
    """An external id as the artifact stores it (a string); ints are accepted for numeric ids."""
    if not _is_scalar_id(value):
        raise ArgumentError(f"{what} must be a string or integer id, got {type(value).__name__}")
    return str(value)


def _as_ids(values: Any, what: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ArgumentError(f"{what} must be a list of ids, got {type(values).__name__}")
    return [_as_id(v, what) for v in values]


def _as_estimator(value: Any) -> FoldInEstimator:
    if value not in ESTIMATORS:
        raise ArgumentError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {value!r}")
    return value  # type: ignore[no-any-return]


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ArgumentError(f"n must be a positive integer, got {n!r}")
    return int(n)


class Model:
    """A trained model version, loaded for scoring (what ``c2f serve`` serves).

    ``recommend`` and ``similar_items`` answer like the ``implicit`` library: numpy arrays of item ids and scores,
    best first. Ids are the external ids as stored in the artifact (strings; integer ids may be passed as ints).

    What was published, read-only: ``version`` (its name), ``path`` (its directory, ``ROOT/versions/<version>``) and
    ``manifest`` (its ``manifest.json`` as a typed :class:`c2f.contract.manifest.Manifest`: the training
    configuration, dataset, metrics with their history and timings, footprint, budget report and trainer notes);
    ``recommender`` is the service's scorer for it, by 0-based indices.
    """

    def __init__(
        self, artifact: Artifact, mode: ServingMode = "compressed", user_vectors: UserVectors = "trained"
    ) -> None:
        if mode not in _MODES:
            raise ArgumentError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        if user_vectors not in USER_VECTORS:
            raise ArgumentError(f"user_vectors must be one of {', '.join(USER_VECTORS)}, got {user_vectors!r}")
        recommender = Recommender(artifact, mode, user_vectors)
        recommender.smoke_test()
        self.recommender: Recommender = recommender
        """The service's scorer for this version (:class:`c2f.service.scoring.Recommender`), by 0-based indices."""
        self.path: Path = artifact.path
        """The version directory the model was loaded from."""
        self.manifest: Manifest = artifact.manifest
        """The version's manifest.json, typed: config, dataset, metrics (history, timings), footprint, budget, info."""

    # ------------------------------------------------------------------------------------------------------------
    # description
    # ------------------------------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """The version's name (``YYYYMMDDTHHMMSSffffffZ-<method>``), the last part of :attr:`path`."""
        return self.recommender.version

    @property
    def method(self) -> str:
        return self.recommender.method

    @property
    def mode(self) -> str:
        """The serving mode scores come from: "compressed" (the served form) or "exact"."""
        return self.recommender.mode

    @property
    def user_ids(self) -> np.ndarray:
        """Every user id the model knows, by index."""
        return self.recommender.user_ids

    @property
    def item_ids(self) -> np.ndarray:
        """Every item id the model knows, by index."""
        return self.recommender.item_ids

    @property
    def metrics(self) -> dict[str, Any]:
        """Evaluation figures from training: ``{"trained": {"valid": {...}, "test": {...}}, "served": {mode:
        {"test": {...}}}}`` with keys such as ``"recall@20"`` and ``"ndcg@20"`` (None where not recorded)."""
        return self.manifest.metrics.as_reported()

    def footprint(self) -> Footprint:
        """Sizes of the model against the float32 full table (``total_bytes``, ``embedding_bytes``,
        ``full_table_bytes``, ``compression_ratio_bytes``, ``params_paper``, ...), as ``GET /footprint`` reports."""
        return self.recommender.artifact.footprint

    def __repr__(self) -> str:
        return (
            f"Model(version={self.version!r}, method={self.method!r}, mode={self.mode!r}, "
            f"users={self.recommender.n_users}, items={self.recommender.n_items})"
        )

    # ------------------------------------------------------------------------------------------------------------
    # ids
    # ------------------------------------------------------------------------------------------------------------
    def _user_indices(self, ids: list[str]) -> list[int]:
        found = [self.recommender.user_index(u) for u in ids]
        unknown = [u for u, i in zip(ids, found, strict=True) if i is None]
        if unknown:
            raise UnknownIdError("user", unknown)
        return [i for i in found if i is not None]

    def _item_indices(self, ids: list[str], *, strict: bool) -> list[int]:
        found = self.recommender.item_indices(ids)
        if strict and (found < 0).any():
            raise UnknownIdError("item", [i for i, k in zip(ids, found.tolist(), strict=True) if k < 0])
        return found[found >= 0].tolist()  # type: ignore[no-any-return]

    def seen_items(self, user_id: str | int) -> np.ndarray:
        """Item ids ``exclude_seen`` drops for ``user_id``: its training interactions (graph and validation; the
        trainer's held-out test interactions are not among them)."""
        (index,) = self._user_indices([_as_id(user_id, "user_id")])
        return self.item_ids[np.unique(self.recommender.seen_items(index))]

    # ------------------------------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------------------------------
    def recommend(
        self,
        user_ids: Any,
        n: int = 20,
        exclude_seen: bool = True,
        exclude: Iterable[str | int] | None = None,
        items: Iterable[str | int] | None = None,
        where: str | Iterable[str] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for one user id or many.

        One id: ``(item_ids, scores)``, two 1-d arrays of at most ``n`` entries, best first. A list of ids:
        two ``(len(user_ids), n)`` arrays, one row per user; rows with fewer than ``n`` candidates are padded with
        ``""`` and ``-inf``. ``exclude_seen`` drops each user's training items; ``exclude`` drops these item ids for
        every user (unknown ids are ignored, as the service does); ``items`` restricts the candidates to these ids
        (unknown ids raise); ``where`` keeps the items whose attributes match, as ``GET /recommend``'s ``where=``
        does (``"genre:jazz|blues"``; several clauses: all must hold; a model trained with an item attribute table).
        Scores are the model's dot products (plus item biases when trained with them).

        Raises :class:`UnknownIdError` for an unknown user id, :class:`ArgumentError` for malformed arguments.
        """
        n = _check_n(n)
        single = _is_scalar_id(user_ids)
        users = [_as_id(user_ids, "user_ids")] if single else _as_ids(user_ids, "user_ids")
        indices = self._user_indices(users)
        item_filter = ItemFilter.build(
            self.recommender.n_items,
            exclude=self._item_indices(_as_ids(exclude, "exclude"), strict=False) if exclude is not None else None,
            allow=self._item_indices(_as_ids(items, "items"), strict=True) if items is not None else None,
            mask=self._attribute_mask(where),
        )
        ranked = self.recommender.recommend_batch(indices, n, exclude_seen=bool(exclude_seen), item_filter=item_filter)
        return self._ranked(ranked, n, single)

    def _attribute_mask(self, where: str | Iterable[str] | None) -> np.ndarray | None:
        """The (n_items,) keep-mask of ``where`` clauses (None without any); ArgumentError when malformed, when the
        model has no attribute table or no such column."""
        if where is None:
            return None
        clauses = [where] if isinstance(where, str) else _as_ids(where, "where")
        try:
            parsed = parse_where(clauses, _MAX_WHERE_VALUES)
        except WhereSyntaxError as err:
            raise ArgumentError(str(err)) from None
        attributes = self.recommender.attributes
        if attributes is None:
            raise ArgumentError("this model has no item attributes: train it on a dataset with an item attribute table")
        try:
            return attributes.mask(parsed)
        except UnknownAttribute as err:
            raise ArgumentError(str(err)) from None

    def _ranked(
        self, ranked: list[tuple[np.ndarray, np.ndarray]], n: int, single: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item ids and scores of ranked (indices, scores) pairs: one pair's 1-d arrays, or (B, n) padded rows."""
        if single:
            idx, scores = ranked[0]
            return self.item_ids[idx], scores
        width = self.item_ids.dtype if self.item_ids.dtype.kind == "U" else np.dtype(str)
        out_ids = np.full((len(ranked), n), "", dtype=width)
        out_scores = np.full((len(ranked), n), -np.inf, dtype=np.float32)
        for row, (idx, scores) in enumerate(ranked):
            out_ids[row, : idx.size] = self.item_ids[idx]
            out_scores[row, : idx.size] = scores
        return out_ids, out_scores

    def _histories(self, items: Any) -> tuple[bool, list[np.ndarray]]:
        """(single, item-index histories) of one history (a list of item ids) or several (a list of lists);
        unknown item ids are skipped, as a visitor's history may name items newer than the model."""
        if _is_scalar_id(items):
            raise ArgumentError("items must be a list of item ids (one history) or a list of such lists")
        values = list(items)
        single = not values or _is_scalar_id(values[0])
        groups = [values] if single else values
        histories = []
        for group in groups:
            ids = _as_ids(group, "items")
            histories.append(np.asarray(self._item_indices(ids, strict=False), dtype=np.int64))
        return single, histories

    def fold_in(self, items: Any, estimator: FoldInEstimator = DEFAULT_ESTIMATOR) -> np.ndarray:
        """The served vector of a user the model never trained, estimated from the items it interacted with
        (no retraining; :mod:`c2f.contract.foldin`): ``(d,)`` for one history (a list of item ids), ``(B, d)`` for a
        list of histories. Unknown item ids are skipped. ``estimator``: "least_squares+map" (the default),
        "propagate+map", "least_squares" or "propagate" (:mod:`c2f.contract.foldin`)."""
        single, histories = self._histories(items)
        vectors = self.recommender.fold_in(histories, _as_estimator(estimator))
        return vectors[0] if single else vectors

    def recommend_from_items(
        self,
        items: Any,
        n: int = 20,
        exclude_seen: bool = True,
        exclude: Iterable[str | int] | None = None,
        estimator: FoldInEstimator = DEFAULT_ESTIMATOR,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for a visitor known only by the items it interacted with (:meth:`fold_in`), as
        :meth:`recommend` answers: one history gives ``(item_ids, scores)``, a list of histories two ``(B, n)``
        arrays. ``exclude_seen`` drops the history's own items; ``exclude`` drops these ids for every history."""
        n = _check_n(n)
        single, histories = self._histories(items)
        dropped = self._item_indices(_as_ids(exclude, "exclude"), strict=False) if exclude is not None else None
        ranked = self.recommender.recommend_histories(
            histories, n, exclude_seen=bool(exclude_seen), exclude_items=dropped, estimator=_as_estimator(estimator)
        )
        return self._ranked(ranked, n, single)

    def similar_items(self, item_id: str | int, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items nearest ``item_id`` by cosine similarity of their served vectors (the item itself left
        out): ``(item_ids, similarities)``, best first. :class:`UnknownIdError` for an unknown item."""
        n = _check_n(n)
        (index,) = self._item_indices([_as_id(item_id, "item_id")], strict=True)
        idx, scores = self.recommender.similar_items(index, n)
        return self.item_ids[idx], scores

    # ------------------------------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------------------------------
    def save(self, root: str | os.PathLike[str]) -> str:
        """Publish this model as a new version of the artifact root ``root`` (atomically, ``LATEST`` pointed at it,
        as the trainer publishes) and return the version name; ``c2f.load(root)`` or ``c2f serve`` read it.

        The stored arrays are read back from :attr:`path` (verified) and published with the manifest and the
        version's other files.
        """
        stored = load_artifact(self.path, verify=True)
        extra = {
            name: (self.path / name).read_bytes()
            for name in stored.manifest.files
            if name not in (MODEL_FILE, MANIFEST_FILE)
        }
        return publish(root, stored.arrays, stored.manifest, extra_files=extra)


def load(
    path_or_root: str | os.PathLike[str],
    version: str | None = None,
    *,
    mode: ServingMode = "compressed",
    user_vectors: UserVectors = "trained",
) -> Model:
    """Load a model as the service does (every file's size and sha256 verified, the arrays validated, a smoke
    query run).

    ``path_or_root``: an artifact root (``LATEST`` or ``version`` picks the version) or one version directory.
    ``mode``: "compressed" (the served form, the default of ``c2f serve``) or "exact". ``user_vectors``:
    "trained" (the default) or "fold_in", known users scored with vectors folded in from their training items
    (``C2F_USER_VECTORS``). Raises :class:`c2f.ArtifactError` for anything missing or corrupt.
    """
    if mode not in _MODES:
        raise ArgumentError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    path = Path(path_or_root)
    if version is None and (path / MANIFEST_FILE).is_file():
        return Model(load_artifact(path, verify=True), mode, user_vectors)
    if version is None:
        version = latest_version(path)
        if version is None:
            raise ArtifactError(f"no model version published in {path} (no {path / 'LATEST'})")
    artifact = load_artifact(version_path(path, version), verify=True)
    if artifact.version != version:
        raise ArtifactError(f"manifest model_version {artifact.version!r} does not match directory {version!r}")
    return Model(artifact, mode, user_vectors)


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def _budget_values(budget: float | str | None) -> dict[str, Any]:
    """``budget``: a number or "2%" (percent of the float32 full table), or a byte size such as "2MB"."""
    from c2f.contract.budget import parse_bytes, parse_percent

    if budget is None:
        return {}
    if isinstance(budget, str):
        text = budget.strip()
        return {"budget": parse_percent(text)} if text.endswith("%") else {"budget_bytes": parse_bytes(text)}
    if isinstance(budget, bool) or not isinstance(budget, int | float):
        raise ArgumentError(f"budget must be a percentage (2 or '2%') or a byte size ('2MB'), got {budget!r}")
    return {"budget": float(budget)}


def _table_columns(
    columns: list[str], user_col: str | None, item_col: str | None, aliases: Mapping[str, tuple[str, ...]]
) -> dict[str, str]:
    """Renames that give a table the reader's ``user`` / ``item`` columns (ArgumentError when one is missing);
    ``aliases``: the column names the readers accept per role."""
    renames: dict[str, str] = {}
    for role, given in (("user", user_col), ("item", item_col)):
        if given is not None:
            if given not in columns:
                raise ArgumentError(f"{role}_col {given!r} is not a column of the table ({', '.join(columns)})")
            renames[given] = role
        elif not any(str(c).strip().lower() in aliases[role] for c in columns):
            raise ArgumentError(
                f"the table has no {role} column: name it one of {', '.join(aliases[role])} or pass "
                f"{role}_col= (columns: {', '.join(map(str, columns))})"
            )
    return renames


def _write_data(
    data: Any,
    directory: Path,
    user_ids: Any,
    item_ids: Any,
    user_col: str | None,
    item_col: str | None,
    aliases: Mapping[str, tuple[str, ...]],
) -> str:
    """``data`` as a dataset URI the readers take: a path/URI as given, a table or matrix written into
    ``directory`` (CSV; Parquet for a pyarrow table)."""
    if isinstance(data, str | os.PathLike):
        return os.fspath(data)
    if "pandas" in sys.modules and isinstance(data, sys.modules["pandas"].DataFrame):
        frame = data.rename(columns=_table_columns(list(data.columns), user_col, item_col, aliases))
        path = directory / "interactions.csv"
        frame.to_csv(path, index=False)
        return str(path)
    if "pyarrow" in sys.modules and isinstance(data, sys.modules["pyarrow"].Table):
        import pyarrow.parquet as pq

        renames = _table_columns(list(data.column_names), user_col, item_col, aliases)
        table = data.rename_columns([renames.get(c, c) for c in data.column_names])
        path = directory / "interactions.parquet"
        pq.write_table(table, path)
        return str(path)
    if "scipy.sparse" in sys.modules and sys.modules["scipy.sparse"].issparse(data):
        import pandas as pd

        matrix = data.tocoo()
        n_users, n_items = matrix.shape
        users = np.arange(n_users) if user_ids is None else np.asarray(user_ids)
        items = np.arange(n_items) if item_ids is None else np.asarray(item_ids)
        if users.shape != (n_users,) or items.shape != (n_items,):
            raise ArgumentError(
                f"user_ids/item_ids must give one id per row/column of the {n_users}x{n_items} matrix "
                f"(got {users.shape[0]} and {items.shape[0]})"
            )
        keep = matrix.data > 0
        if not keep.any():
            raise ArgumentError("the matrix has no positive entries (interactions)")
        path = directory / "interactions.csv"
        pd.DataFrame({"user": users[matrix.row[keep]], "item": items[matrix.col[keep]]}).to_csv(path, index=False)
        return str(path)
    raise ArgumentError(
        "data must be a path or URI, a pandas DataFrame or pyarrow Table with user/item columns, or a scipy.sparse "
        f"user x item matrix; got {type(data).__name__}"
    )


@contextmanager
def _showing_progress(
    progress: bool | Callable[[dict[str, Any]], None], bars: Callable[[bool], AbstractContextManager[None]]
) -> Iterator[None]:
    """What ``c2f train`` shows: the trainer's bars (``bars``: :func:`c2f.trainer.bars.bars`) and its INFO log
    lines (a handler on the ``c2f`` logger while training, unless logging is configured already). False: neither."""
    show = progress is True
    logger = logging.getLogger("c2f")
    handler: logging.Handler | None = None
    level = logger.level
    if show and not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        with bars(show):
            yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(level)


def train(
    data: Any,
    method: str | None = None,
    budget: float | str | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    progress: bool | Callable[[dict[str, Any]], None] = True,
    mode: ServingMode = "compressed",
    user_ids: Any = None,
    item_ids: Any = None,
    user_col: str | None = None,
    item_col: str | None = None,
    **params: Any,
) -> Model:
    """Train ``method`` on ``data`` as ``c2f train`` does, publish the version, and return it loaded.

    ``data``: a dataset path or URI (LightGCN directory, CSV/TSV/Parquet table; file://, s3://, http(s)://), a
    pandas DataFrame or pyarrow Table with user and item columns (``user_col`` / ``item_col`` name them when not
    called user/item/user_id/...), or a scipy.sparse user x item matrix (positive entries are interactions;
    ``user_ids`` / ``item_ids`` name its rows and columns, default 0..n-1). Tables are split per user into train,
    validation and test (20%), as ``c2f train`` splits them.

    ``method``: c2f | ud | legcf | hash | qr; None: the default recipe (a d = 64 table served from the items'
    product-quantized codes, users folded in: ``contract.config.DEFAULT_RECIPE``). ``budget``: a memory budget,
    percent of the float32 full table (``2`` or ``"2%"``) or bytes (``"2MB"``); it sets the method's size.
    ``params``: any :class:`c2f.contract.config.TrainConfig` field (``dim=32, epochs=20, seed=1, ...``). ``out``:
    the artifact root to publish into; by default a temporary directory that lives as long as the model
    (:meth:`Model.save` keeps a copy). ``progress``: True shows the CLI's progress bars and log lines, False
    nothing, a callable receives the trainer's progress events instead. ``mode``: the serving mode the returned
    model scores in.

    Raises :class:`ArgumentError` for bad arguments or parameters, :class:`c2f.BudgetError` for a budget the
    method cannot meet, and the readers' ``DatasetError`` (a ValueError naming file and line) for unreadable data.
    """
    from c2f.contract.budget import BudgetError, check_possible
    from c2f.contract.config import TrainConfig

    if mode not in _MODES:
        raise ArgumentError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if not isinstance(progress, bool) and not callable(progress):
        raise ArgumentError(f"progress must be True, False or a callable, got {progress!r}")
    try:
        config = TrainConfig.from_dict({**params, **_budget_values(budget), "method": method})
        check_possible(config)  # a budget no dataset allows is refused before the data is read, as the CLI does
    except BudgetError:
        raise
    except (TypeError, ValueError) as error:
        raise ArgumentError(str(error)) from error

    # the trainer (and torch) only now; every other path of this module is numpy only
    from c2f.trainer.bars import bars
    from c2f.trainer.data.readers import COLUMN_ALIASES
    from c2f.trainer.pipeline import train_and_publish

    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="c2f-model-"))
    try:
        with tempfile.TemporaryDirectory(prefix="c2f-data-") as scratch:
            uri = _write_data(data, Path(scratch), user_ids, item_ids, user_col, item_col, COLUMN_ALIASES)
            with _showing_progress(progress, bars):
                published = train_and_publish(uri, config, root, progress=progress if callable(progress) else None)
        model = load(root, published.version, mode=mode)
    except BaseException:
        if out is None:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if out is None:  # the temporary root goes when the model does
        weakref.finalize(model, shutil.rmtree, str(root), True)
    return model
