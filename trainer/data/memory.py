"""Handing freed memory back to the operating system after a large, short-lived allocation (reading a dataset).

Reading a table leaves most of what it allocated cached in the allocators, not in use: pyarrow's pool keeps freed
blocks and glibc's malloc keeps freed pages in its arenas. Measured on the 300,000-user table of
``benchmarks/scale.py`` (3.99M rows): RSS 783 MB after ``load_dataset``, 607 MB after the Arrow pool's
``release_unused``, 373 MB after ``malloc_trim(0)``: 410 MB that training would otherwise carry to its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def release_freed_memory() -> None:
    """Return the Arrow pool's unused blocks and glibc's free heap pages to the OS (a no-op elsewhere)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # only when a reader imported it
        pyarrow.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            trim = libc.malloc_trim
        except (OSError, AttributeError):  # musl and others have no malloc_trim
            return
        trim.argtypes = [ctypes.c_size_t]
        trim(0)
