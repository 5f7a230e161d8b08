"""The one server process every visitor shares: keep the C allocator from sitting on memory Python has freed, and
know what the CPU can do.

Streamlit runs each page run in its own thread, and glibc gives threads their own heaps ("arenas", up to 8 per core),
each keeping what was freed in it. After a large text, resident memory then stays hundreds of MB above what is in
use. Fewer arenas and an explicit trim after heavy work return that memory to the system. No-ops off glibc.
"""

from __future__ import annotations

import ctypes
import gc
import ctypes.util
from functools import lru_cache
from pathlib import Path

M_ARENA_MAX = -8  # mallopt parameter numbers in glibc's malloc.h
M_MMAP_THRESHOLD = -3

_libc = None
try:
    _name = ctypes.util.find_library("c")
    _libc = ctypes.CDLL(_name) if _name else None
    if _libc is not None and not hasattr(_libc, "malloc_trim"):
        _libc = None
except OSError:
    _libc = None


def tune_allocator(arenas: int = 2, mmap_threshold: int = 4 * 2**20) -> bool:
    """At most `arenas` heaps for all threads started from now on, and blocks of `mmap_threshold` bytes or more
    (a layer's activations, a chunk of logits) mapped on their own, so that freeing them returns them to the system
    at once. glibc otherwise raises that threshold to 32 MB after the first large free, and such blocks then stay in
    a heap. True where the allocator took both."""
    if _libc is None:
        return False
    return bool(_libc.mallopt(M_ARENA_MAX, arenas)) and bool(_libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))


def release_freed_memory(collect: bool = False) -> None:
    """Give memory the allocator holds but nothing uses back to the system (a few ms); with `collect`, unreachable
    cycles first (with torch loaded a full collection takes ~0.3 s of CPU: once per page run that computed, or a
    training, never per call)."""
    if collect:
        gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)


MADV_DONTNEED = 4
PAGE = 4096


def forget_file_pages(pointer: int, nbytes: int) -> int:
    """Let the kernel drop the pages of [pointer, pointer + nbytes) where they lie in a private mapping of a file
    (a safetensors checkpoint is mapped whole, and its tensors are views of it): pages read once and never again (a
    table narrowed to bfloat16 out of its float32 file) otherwise stay resident as long as any other weight of the
    file lives (Gemma 3's table: 640 MB, measured). Reading them again would read the file. Returns the bytes given
    back (0 off Linux, or for memory that is not a file's)."""
    if _libc is None:
        return 0
    try:
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
    except OSError:
        return 0
    for line in lines:
        fields = line.split()
        low, high = (int(part, 16) for part in fields[0].split("-"))
        if low <= pointer < high:
            if len(fields) < 6 or not fields[5].startswith("/") or "p" not in fields[1]:
                return 0  # anonymous or shared: not ours to drop
            start = (pointer + PAGE - 1) // PAGE * PAGE
            end = min(pointer + nbytes, high) // PAGE * PAGE
            if end <= start:
                return 0
            _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED)
            return end - start
    return 0


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AMX or AVX-512 BF16): there, bf16 autocast is ~3x faster for
    MiniLM (measured); elsewhere it would be slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
