"""Raw readers: where the bytes come from (fsspec) and how the two supported formats parse.

Everything here is numpy/pandas only (no torch). Parsers return plain arrays plus the line number of every
interaction so that later checks (ids out of range, ...) can still name ``<file>:<line>``.

Formats
-------
* LightGCN directory: ``train.txt``, ``test.txt`` (optional), ``user_list.txt`` / ``item_list.txt`` (optional, header
  ``org_id remap_id``); interaction lines ``user item item ...``. Each file may also be stored gzip'ed
  (``train.txt.gz``).
* Interaction tables: CSV / TSV / Parquet with columns ``user,item[,weight][,timestamp]`` (aliases accepted, see
  ``COLUMN_ALIASES``), optionally compressed (``.gz``, ``.bz2``, ``.xz``, ``.zst``; inferred from the name).
"""

from __future__ import annotations

import io
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import fsspec
import fsspec.compression
import fsspec.core
import fsspec.utils
import numpy as np
import pandas as pd


class DatasetError(ValueError):
    """A dataset cannot be read. The message reads ``<file>:<line>: <problem>``."""


# ----------------------------------------------------------------------------------------------------------------
# Sources: an fsspec filesystem (local, file://, s3://, http(s):// with aiohttp) or a urllib fallback for http(s).
# ----------------------------------------------------------------------------------------------------------------

TABLE_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
LIGHTGCN_FILES = ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4")


class Source:
    """Read-only access to the location a dataset URI points to (a file, or a directory of files)."""

    def __init__(self, uri: str, fs: Any | None, path: str):
        self.uri = uri
        self.fs = fs
        self.path = path

    def child(self, name: str) -> str:
        base = self.path.rstrip("/")
        return f"{base}/{name}"

    def display(self, path: str) -> str:
        """How a path is named in error messages: the URI form the user gave."""
        if self.fs is None or "://" not in self.uri:
            return path
        protocol = self.uri.split("://", 1)[0]
        return path if "://" in path else f"{protocol}://{path}"

    def exists(self, path: str) -> bool:
        if self.fs is None:
            return _urllib_exists(path)
        try:
            return bool(self.fs.exists(path))
        except (FileNotFoundError, PermissionError):
            return False
        except OSError as exc:
            raise DatasetError(f"{self.display(path)}: cannot reach: {exc}") from exc

    def isfile(self, path: str) -> bool:
        if self.fs is None:
            return _urllib_exists(path)
        try:
            return bool(self.fs.isfile(path))
        except (FileNotFoundError, PermissionError):
            return False
        except OSError as exc:
            raise DatasetError(f"{self.display(path)}: cannot reach: {exc}") from exc

    def read_raw(self, path: str) -> bytes:
        """The stored bytes (still compressed if the file is)."""
        try:
            if self.fs is None:
                with urllib.request.urlopen(path, timeout=60) as response:  # noqa: S310 (URI checked upstream)
                    return bytes(response.read())
            return bytes(self.fs.cat_file(path))
        except FileNotFoundError as exc:
            raise DatasetError(f"{self.display(path)}: not found") from exc
        except (OSError, urllib.error.URLError) as exc:
            raise DatasetError(f"{self.display(path)}: cannot read: {exc}") from exc


def _urllib_exists(url: str) -> bool:
    for method in ("HEAD", "GET"):
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return 200 <= int(response.status) < 300
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return False
            if exc.code in (405, 501) and method == "HEAD":
                continue  # HEAD not supported: ask with GET
            raise DatasetError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DatasetError(f"{url}: cannot reach: {exc}") from exc
    return False


def open_source(uri: str, storage_options: dict[str, Any] | None = None) -> Source:
    """Resolve a URI with fsspec. ``http(s)://`` falls back to urllib when fsspec's HTTP backend (aiohttp) is absent."""
    options = dict(storage_options or {})
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
    except ImportError:
        protocol = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if protocol in ("http", "https"):
            return Source(uri, None, uri)
        raise DatasetError(
            f"{uri}: no filesystem for protocol {protocol!r} (install the matching fsspec backend, e.g. s3fs)"
        ) from None
    except ValueError as exc:
        raise DatasetError(f"{uri}: {exc}") from exc
    except OSError as exc:  # filesystems that connect on construction (ftp, sftp, ...)
        raise DatasetError(f"{uri}: cannot connect: {exc}") from exc
    return Source(uri, fs, path)


def strip_compression(path: str) -> str:
    lower = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            return path[: -len(suffix)]
    return path


def table_format(path: str) -> str | None:
    """``csv`` / ``tsv`` / ``parquet`` from the file name (compression suffix ignored), else None."""
    base = strip_compression(path.rstrip("/")).lower()
    for ext, fmt in TABLE_EXTENSIONS.items():
        if base.endswith(ext):
            return fmt
    return None


def decompress(raw: bytes, path: str, display: str) -> bytes:
    """Decompress by the file name's suffix (fsspec's compression inference)."""
    compression = fsspec.utils.infer_compression(path)
    if compression is None:
        return raw
    try:
        opener = fsspec.compression.compr[compression]
        with opener(io.BytesIO(raw), mode="rb") as handle:
            return bytes(handle.read())
    except Exception as exc:  # noqa: BLE001 (any codec error is a bad file)
        raise DatasetError(f"{display}:1: cannot decompress ({compression}): {exc}") from exc


# ----------------------------------------------------------------------------------------------------------------
# LightGCN text format
# ----------------------------------------------------------------------------------------------------------------

MAX_ID = 2**31 - 2  # CSR indices are int32


@dataclass
class LightGCNFile:
    """One parsed ``user item item ...`` file."""

    name: str
    users: np.ndarray  # (nnz,) int64, user of each (user, item) pair
    items: np.ndarray  # (nnz,) int64
    item_lines: np.ndarray  # (nnz,) int64, 1-based line of each pair
    head_users: np.ndarray  # (n_lines_with_content,) int64, the first token of every non-empty line
    head_lines: np.ndarray  # (n_lines_with_content,) int64


def _locate_bad_int(tokens: list[list[bytes]], name: str) -> DatasetError:
    for lineno, toks in enumerate(tokens, 1):
        for tok in toks:
            try:
                value = int(tok)
            except ValueError:
                return DatasetError(f"{name}:{lineno}: non-integer id {tok.decode(errors='replace')!r}")
            if abs(value) > MAX_ID:
                return DatasetError(f"{name}:{lineno}: id {value} is too large")
    return DatasetError(f"{name}: unparsable integer ids")


def parse_lightgcn(data: bytes, name: str) -> LightGCNFile:
    """Parse ``user item item ...`` lines. Empty lines and lines holding only a user are fine."""
    lines = data.split(b"\n")
    tokens = [line.split() for line in lines]
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = list(chain.from_iterable(tokens))
    if not flat:
        raise DatasetError(f"{name}:1: empty file")
    try:
        values = np.array(flat, dtype=np.bytes_).astype(np.int64)
    except (ValueError, OverflowError):
        raise _locate_bad_int(tokens, name) from None
    line_of_token = np.repeat(np.arange(1, len(tokens) + 1, dtype=np.int64), counts)
    bad = np.flatnonzero((values < 0) | (values > MAX_ID))
    if bad.size:
        pos = int(bad[0])
        value = int(values[pos])
        problem = f"negative id {value}" if value < 0 else f"id {value} is too large"
        raise DatasetError(f"{name}:{int(line_of_token[pos])}: {problem}")
    nonempty = counts > 0
    head_pos = (np.cumsum(counts) - counts)[nonempty]
    head_users = values[head_pos]
    head_lines = np.flatnonzero(nonempty).astype(np.int64) + 1
    is_item = np.ones(values.size, dtype=bool)
    is_item[head_pos] = False
    return LightGCNFile(
        name=name,
        users=np.repeat(head_users, counts[nonempty] - 1),
        items=values[is_item],
        item_lines=line_of_token[is_item],
        head_users=head_users,
        head_lines=head_lines,
    )


def parse_id_list(data: bytes, name: str) -> np.ndarray:
    """``user_list.txt`` / ``item_list.txt``: ``org_id remap_id`` per line (header optional) -> ids by remap id.

    The remap ids must be exactly 0..n-1 and the org ids unique (they become the external ids).
    """
    text = data.decode("utf-8", errors="replace")
    org_col, remap_col = 0, 1
    orgs: list[str] = []
    remaps: list[int] = []
    lines_of: list[int] = []
    header_done = False
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if not header_done:
            header_done = True
            lowered = [p.lower() for p in parts]
            if "remap_id" in lowered:
                remap_col = lowered.index("remap_id")
                org_col = lowered.index("org_id") if "org_id" in lowered else (1 if remap_col == 0 else 0)
                continue
        if len(parts) <= max(org_col, remap_col):
            raise DatasetError(f"{name}:{lineno}: expected 'org_id remap_id', got {line.strip()!r}")
        try:
            remap = int(parts[remap_col])
        except ValueError:
            raise DatasetError(f"{name}:{lineno}: non-integer remap id {parts[remap_col]!r}") from None
        if remap < 0:
            raise DatasetError(f"{name}:{lineno}: negative remap id {remap}")
        orgs.append(parts[org_col])
        remaps.append(remap)
        lines_of.append(lineno)
    if not remaps:
        raise DatasetError(f"{name}:1: empty file")
    remap_arr = np.asarray(remaps, dtype=np.int64)
    n = int(remap_arr.max()) + 1
    if n > MAX_ID:
        raise DatasetError(f"{name}:{lines_of[int(remap_arr.argmax())]}: remap id {n - 1} is too large")
    seen = np.full(n, -1, dtype=np.int64)
    order = np.argsort(remap_arr, kind="stable")
    sorted_remaps = remap_arr[order]
    dup = np.flatnonzero(sorted_remaps[1:] == sorted_remaps[:-1])
    if dup.size:
        pos = int(order[dup[0] + 1])
        raise DatasetError(f"{name}:{lines_of[pos]}: duplicate remap id {remaps[pos]}")
    seen[remap_arr] = np.arange(remap_arr.size)
    missing = np.flatnonzero(seen < 0)
    if missing.size:
        raise DatasetError(f"{name}:1: remap ids are not contiguous 0..{n - 1}: {int(missing[0])} is missing")
    ids = np.asarray(orgs, dtype=str)[seen]
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup_id = str(uniq[np.flatnonzero(counts > 1)[0]])
        positions = np.flatnonzero(np.asarray(orgs, dtype=str) == dup_id)
        raise DatasetError(f"{name}:{lines_of[int(positions[1])]}: duplicate org id {dup_id!r}")
    return ids


# ----------------------------------------------------------------------------------------------------------------
# Interaction tables
# ----------------------------------------------------------------------------------------------------------------

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid"),
    "item": ("item", "item_id", "itemid", "iid"),
    "weight": ("weight", "rating", "value"),
    "timestamp": ("timestamp", "ts", "time", "datetime"),
}


@dataclass
class TableColumns:
    """The columns of an interaction table, ids already encoded: ``users[k]`` indexes ``user_ids`` (sorted, unique
    strings), the same for items. ``lines`` is the 1-based line of every row where rows and lines do not line up
    (a CSV with blank lines); otherwise None and row r (0-based) is line ``r + first_line`` (2 for a CSV under its
    header, 1 for Parquet rows; see :meth:`line`)."""

    name: str
    users: np.ndarray  # (n,) int64 codes into user_ids
    user_ids: np.ndarray  # (n_users,) str, sorted
    items: np.ndarray  # (n,) int64 codes into item_ids
    item_ids: np.ndarray  # (n_items,) str, sorted
    weights: np.ndarray | None  # (n,) float64
    timestamps: np.ndarray | None  # (n,) float64 (datetimes as ns since the epoch)
    lines: np.ndarray | None  # (n,) int64, or None: line = position + first_line
    first_line: int = 1

    def line(self, pos: int) -> int:
        """The 1-based line (CSV) or row (Parquet) of the row at 0-based position ``pos``."""
        return int(self.lines[pos]) if self.lines is not None else int(pos) + self.first_line


_PANDAS_LINE = re.compile(r"line (\d+)")


def _find_columns(columns: list[str], name: str) -> dict[str, str]:
    lowered = {str(c).strip().lower(): str(c) for c in columns}
    found: dict[str, str] = {}
    for role, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                found[role] = lowered[alias]
                break
    for role in ("user", "item"):
        if role not in found:
            have = ", ".join(str(c) for c in columns) or "none"
            raise DatasetError(
                f"{name}:1: missing column {role!r} (accepted names: {', '.join(COLUMN_ALIASES[role])}; found: {have})"
            )
    return found


def _numbers(col: pd.Series, role: str, name: str, line: Callable[[int], int]) -> np.ndarray:
    """A weight or timestamp column as float64 (datetimes as ns since the epoch); DatasetError names the first
    value that is not a number."""
    arr = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr)
    if role == "timestamp" and bad.all():
        # not numeric at all: calendar dates / datetimes (as ns since the epoch)
        dates = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
        ok = dates.notna().to_numpy()
        if ok.any():
            arr = np.full(len(col), np.nan)
            stamps = dates[ok].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
            arr[ok] = stamps.astype(np.int64).astype(np.float64)
            bad = ~ok
    where = np.flatnonzero(bad)
    if where.size:
        pos = int(where[0])
        raise DatasetError(f"{name}:{line(pos)}: {role} {str(col.iloc[pos])!r} is not a number")
    return arr


def _encode_vocabulary(codes: np.ndarray, vocab: np.ndarray, name: str, role: str, line: Callable[[int], int]):
    """Codes into a raw (unsorted, untrimmed) vocabulary -> codes into its sorted, stripped, unique values.

    Works on the distinct values only (one string per id, never per row); two raw values equal after stripping
    whitespace become one id. An empty id is a DatasetError naming its first row."""
    vocab = np.char.strip(np.asarray(vocab).astype(str))
    empty = np.flatnonzero(vocab == "")
    if empty.size:
        first = int(np.flatnonzero(np.isin(codes, empty))[0])
        raise DatasetError(f"{name}:{line(first)}: empty {role} id")
    ids, inverse = np.unique(vocab, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)[codes], ids


def _encode_arrow_ids(col: Any, name: str, role: str, line: Callable[[int], int]) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow id column (no nulls; plain or dictionary-typed) -> (codes (n,) int64, sorted ids): dictionary-encoded
    in Arrow, so only the distinct ids ever become Python strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(col.type):  # encode its values afresh
        col = col.cast(col.type.value_type)
    encoded = pc.dictionary_encode(col.combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    vocab = encoded.dictionary.to_numpy(zero_copy_only=False)
    return _encode_vocabulary(codes, vocab, name, role, line)


def _read_parquet(data: bytes, name: str) -> TableColumns:
    """Parquet through pyarrow: id columns are dictionary-encoded in Arrow (integer codes per row, a Python string
    per *distinct* id only), so a table of tens of millions of rows never becomes per-row Python objects."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except Exception as exc:  # noqa: BLE001 (pyarrow raises many types)
        raise DatasetError(f"{name}:1: not a readable parquet file: {exc}") from exc
    columns = _find_columns(list(table.column_names), name)
    if table.num_rows == 0:
        raise DatasetError(f"{name}:1: no interactions (the table has no rows)")

    def row(pos: int) -> int:
        return int(pos) + 1

    def ids(role: str) -> tuple[np.ndarray, np.ndarray]:
        col = table.column(columns[role])
        if col.null_count:
            first = int(pc.index(pc.is_null(col), True).as_py())
            raise DatasetError(f"{name}:{row(first)}: empty {role} id")
        return _encode_arrow_ids(col, name, role, row)

    def numbers(role: str) -> np.ndarray | None:
        if role not in columns:
            return None
        return _numbers(table.column(columns[role]).to_pandas(), role, name, row)

    users, user_ids = ids("user")
    items, item_ids = ids("item")
    return TableColumns(
        name=name,
        users=users,
        user_ids=user_ids,
        items=items,
        item_ids=item_ids,
        weights=numbers("weight"),
        timestamps=numbers("timestamp"),
        lines=None,
    )


def read_csv_arrow(data: bytes, name: str, fmt: str) -> TableColumns | None:
    """The fast CSV path: pyarrow's parser, id columns dictionary-encoded as for Parquet (no Python object per row;
    pandas' ``dtype=str`` frame holds two per row, ~1.5 GB at 13M rows). None where this path cannot promise the
    pandas path's exact answer: blank lines (pandas counts them as lines, pyarrow skips them), a parse error, bytes
    that are not UTF-8 (pandas replaces them), an empty id (pandas drops all-empty rows first). The caller then
    runs :func:`read_csv_pandas`, whose error messages are the reference."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    body = data.rstrip(b"\r\n")
    if re.match(rb"[ \t\r]*\n", body) or re.search(rb"\n[ \t\r]*(\n|\Z)", body):
        return None  # a blank line somewhere: rows and lines would not line up
    sep = "\t" if fmt == "tsv" else ","
    header_end = data.find(b"\n")
    try:
        header = pcsv.read_csv(
            pa.BufferReader(data[: header_end + 1] if header_end >= 0 else data + b"\n"),
            parse_options=pcsv.ParseOptions(delimiter=sep),
        ).column_names
        if len(set(header)) != len(header):
            return None
        table = pcsv.read_csv(
            pa.BufferReader(data),
            parse_options=pcsv.ParseOptions(delimiter=sep, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={column: pa.string() for column in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError):
        return None
    columns = _find_columns(list(table.column_names), name)
    if table.num_rows == 0:
        return None

    def line_of(pos: int) -> int:
        return int(pos) + 2  # header on line 1, no blank lines

    def ids(role: str) -> tuple[np.ndarray, np.ndarray]:
        return _encode_arrow_ids(table.column(columns[role]), name, role, line_of)

    def numbers(role: str) -> np.ndarray | None:
        if role not in columns:
            return None
        col = table.column(columns[role])
        try:
            return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # not plain decimals (dates, padded numbers, a bad value): pandas' parse and its error message
            return _numbers(col.to_pandas(), role, name, line_of)

    try:
        users, user_ids = ids("user")
        items, item_ids = ids("item")
    except DatasetError:
        return None
    weights, timestamps = numbers("weight"), numbers("timestamp")
    if (weights is not None and not np.isfinite(weights).all()) or (
        timestamps is not None and not np.isfinite(timestamps).all()
    ):
        return None  # "nan"/"inf" parse as floats here; pandas' path names them as not numbers
    return TableColumns(
        name=name,
        users=users,
        user_ids=user_ids,
        items=items,
        item_ids=item_ids,
        weights=weights,
        timestamps=timestamps,
        lines=None,
        first_line=2,
    )


def read_table(data: bytes, name: str, fmt: str) -> TableColumns:
    """Parse a CSV / TSV / Parquet interaction table (already decompressed)."""
    if not data.strip():
        raise DatasetError(f"{name}:1: empty file")
    if fmt == "parquet":
        return _read_parquet(data, name)
    fast = read_csv_arrow(data, name, fmt)
    return fast if fast is not None else read_csv_pandas(data, name, fmt)


def _pandas_strings(data: bytes, name: str, fmt: str, *, skip_blank_lines: bool) -> pd.DataFrame:
    """A CSV/TSV as a frame of strings (no NA parsing, bytes that are not UTF-8 replaced); DatasetError naming the
    file and line for an empty or malformed file."""
    try:
        return pd.read_csv(
            io.BytesIO(data),
            sep="\t" if fmt == "tsv" else ",",
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=skip_blank_lines,
            encoding_errors="replace",
        )
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{name}:1: empty file") from None
    except pd.errors.ParserError as exc:
        match = _PANDAS_LINE.search(str(exc))
        line = match.group(1) if match else "1"
        raise DatasetError(f"{name}:{line}: malformed {fmt.upper()} ({str(exc).strip()})") from exc


def read_csv_pandas(data: bytes, name: str, fmt: str) -> TableColumns:
    """The reference CSV path (pandas, one string per row): exact line numbers with blank lines, replacement of
    bytes that are not UTF-8, the error messages the tests pin."""
    frame = _pandas_strings(data, name, fmt, skip_blank_lines=False)
    line_offset = 2  # header on line 1
    # skip_blank_lines=False keeps line numbers exact; blank lines come through as all-empty rows: drop them.
    blank = (frame.isna() | (frame.astype(str).apply(lambda col: col.str.strip()) == "")).all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank]
    columns = _find_columns(list(frame.columns), name)
    lines = frame.index.to_numpy(dtype=np.int64) + line_offset
    if len(frame) == 0:
        raise DatasetError(f"{name}:{line_offset}: no interactions (the table has no rows)")

    def line_of(pos: int) -> int:
        return int(lines[pos])

    def ids(role: str) -> tuple[np.ndarray, np.ndarray]:
        col = frame[columns[role]]
        missing = col.isna().to_numpy()
        values = col.astype(str).str.strip().to_numpy(dtype=str)
        bad = np.flatnonzero(missing | (values == ""))
        if bad.size:
            raise DatasetError(f"{name}:{int(lines[bad[0]])}: empty {role} id")
        vocab, codes = np.unique(values, return_inverse=True)
        return codes.reshape(-1).astype(np.int64), vocab

    def numbers(role: str) -> np.ndarray | None:
        if role not in columns:
            return None
        return _numbers(frame[columns[role]], role, name, line_of)

    users, user_ids = ids("user")
    items, item_ids = ids("item")
    return TableColumns(
        name=name,
        users=users,
        user_ids=user_ids,
        items=items,
        item_ids=item_ids,
        weights=numbers("weight"),
        timestamps=numbers("timestamp"),
        lines=lines,
    )


# ----------------------------------------------------------------------------------------------------------------
# Item attribute tables
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ItemTable:
    """An item attribute table: unique item ids and string columns (one value per row; missing cells ``""``)."""

    name: str
    item_ids: np.ndarray  # (rows,) str, unique
    columns: dict[str, np.ndarray]  # column name -> (rows,) str
    lines: np.ndarray  # (rows,) int64, the line (CSV) or row (Parquet) of each row


def _cells(col: pd.Series) -> np.ndarray:
    """A column as stripped strings, missing cells (None, NaN, NaT) as ``""``; numbers as Python prints them."""
    missing = col.isna().to_numpy()
    values = col.astype(str).str.strip().to_numpy(dtype=str)
    values[missing] = ""
    return values


def _arrow_strings(col: Any) -> pd.Series:
    """An Arrow column as a pandas Series of strings as Arrow writes them (integers without a ".0"), nulls None."""
    import pyarrow as pa

    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    try:
        return col.cast(pa.string()).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return col.to_pandas()


def read_item_table(data: bytes, name: str, fmt: str, max_columns: int) -> ItemTable:
    """Parse an item attribute table (CSV / TSV / Parquet, already decompressed): an item id column (any of
    ``COLUMN_ALIASES["item"]``) and up to ``max_columns`` attribute columns, every value read as a string.

    DatasetError names the file and line: no item column, an empty or duplicated item id, a column name that
    is empty or holds ``:`` (``where=column:value`` splits on it), too many columns."""
    if not data.strip():
        raise DatasetError(f"{name}:1: empty file")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as exc:  # noqa: BLE001 (pyarrow raises many types)
            raise DatasetError(f"{name}:1: not a readable parquet file: {exc}") from exc
        frame = pd.DataFrame({column: _arrow_strings(table.column(column)) for column in table.column_names})
        first = 1
    else:
        frame = _pandas_strings(data, name, fmt, skip_blank_lines=True)
        first = 2
    lowered = {str(c).strip().lower(): str(c) for c in frame.columns}
    item_col = next((lowered[a] for a in COLUMN_ALIASES["item"] if a in lowered), None)
    if item_col is None:
        have = ", ".join(str(c) for c in frame.columns) or "none"
        raise DatasetError(
            f"{name}:1: missing column 'item' (accepted names: {', '.join(COLUMN_ALIASES['item'])}; found: {have})"
        )
    lines = np.arange(len(frame), dtype=np.int64) + first
    ids = _cells(frame[item_col])
    empty = np.flatnonzero(ids == "")
    if empty.size:
        raise DatasetError(f"{name}:{int(lines[empty[0]])}: empty item id")
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if dup.size:
        pos = int(order[dup[0] + 1])
        raise DatasetError(f"{name}:{int(lines[pos])}: item {str(ids[pos])!r} is listed twice")
    others = [str(c) for c in frame.columns if str(c) != item_col]
    if len(others) > max_columns:
        raise DatasetError(f"{name}:1: {len(others)} attribute columns; at most {max_columns} are supported")
    columns: dict[str, np.ndarray] = {}
    for column in others:
        label = column.strip()
        if not label or ":" in label or label in columns:
            raise DatasetError(f"{name}:1: attribute column {column!r} is empty, repeated or holds ':'")
        columns[label] = _cells(frame[column])
    return ItemTable(name=name, item_ids=ids, columns=columns, lines=lines)
