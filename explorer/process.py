"""The one server process every visitor shares: keep the C allocator from sitting on memory Python has freed.

Streamlit runs each page run in its own thread, and glibc gives threads their own heaps ("arenas", up to 8 per core),
each keeping what was freed in it. After a large text, resident memory then stays hundreds of MB above what is in
use. Fewer arenas and an explicit trim after heavy work return that memory to the system. No-ops off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_ARENA_MAX = -8  # mallopt parameter number in glibc's malloc.h

_libc = None
try:
    _name = ctypes.util.find_library("c")
    _libc = ctypes.CDLL(_name) if _name else None
    if _libc is not None and not hasattr(_libc, "malloc_trim"):
        _libc = None
except OSError:
    _libc = None


def limit_allocator_arenas(count: int = 2) -> bool:
    """At most `count` heaps for all threads started from now on; True where the allocator took it."""
    return bool(_libc is not None and _libc.mallopt(M_ARENA_MAX, count))


def release_freed_memory() -> None:
    """Give memory the allocator holds but nothing uses back to the system (a few ms)."""
    if _libc is not None:
        _libc.malloc_trim(0)
