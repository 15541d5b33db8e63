"""Handing freed memory back to the operating system: after a large, short-lived allocation (reading a dataset),
and, for a training run, by keeping glibc's malloc from caching freed mid-sized blocks at all.

Reading a table leaves most of what it allocated cached in the allocators, not in use: pyarrow's pool keeps freed
blocks and glibc's malloc keeps freed pages in its arenas. Measured on the 300,000-user table of
``benchmarks/scale.py`` (3.99M rows): RSS 783 MB after ``load_dataset``, 607 MB after the Arrow pool's
``release_unused``, 373 MB after ``malloc_trim(0)``: 410 MB that training would otherwise carry to its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks of at least this size are mmap'd, so freeing them returns them to the OS at once. glibc's default starts at
# 128 KiB but raises itself up to 32 MiB as big blocks are freed, after which every block below that comes from the
# heap and stays cached once freed: a training run's evaluation buffers, batch tensors and METIS's work arrays then
# ratchet RSS up phase after phase. Measured on benchmarks/scale.py's 100,000-user table (c2f, one epoch per
# phase): peak RSS 1,424 MB with glibc's defaults, 1,144 MB with these two thresholds fixed.
MMAP_THRESHOLD_BYTES = 1 << 20
TRIM_THRESHOLD_BYTES = 16 << 20


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def cap_allocator_cache() -> bool:
    """Fix glibc malloc's mmap and trim thresholds (``MMAP_THRESHOLD_BYTES``, ``TRIM_THRESHOLD_BYTES``) for this
    process, so that freed blocks of 1 MiB and more go back to the OS; True when set (glibc only)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    if mallopt is None:  # not glibc (musl, macOS): nothing to set
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


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
