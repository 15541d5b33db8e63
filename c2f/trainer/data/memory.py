"""Handing freed memory back to the operating system after a large, short-lived allocation: reading a dataset, and
in training after METIS, each evaluation and each operator build.

Reading a table leaves most of what it allocated cached in the allocators, not in use: pyarrow's pool keeps freed
blocks and glibc's malloc keeps freed pages in its arenas. Measured on the 300,000-user table of
``benchmarks/scale.py`` (3.99M rows): RSS 783 MB after ``load_dataset``, 607 MB after the Arrow pool's
``release_unused``, 373 MB after ``malloc_trim(0)``: 410 MB that training would otherwise carry to its peak.

Trimming at these boundaries rather than fixing malloc's mmap threshold low: with a 1 MiB threshold (every freed
block of 1 MiB or more unmapped at once) benchmarks/scale.py's 100,000-user c2f run peaked at 1,075 MB instead of
1,307 MB, but its epochs took 20.2 s instead of 13.6 s and its operator builds 22.9 s instead of 13.4 s (one run
each, on a machine shared with two other benchmarks): every batch tensor then comes in fresh pages. With the trims
instead, the same run peaked at 1,188 MB at 13.5 s per epoch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache  # find_library runs ldconfig in a subprocess: once per process, not at every trim
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Return the Arrow pool's unused blocks and glibc's free heap pages to the OS (a no-op elsewhere)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # only when a reader imported it
        pyarrow.default_memory_pool().release_unused()
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:  # musl and others have no malloc_trim
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
