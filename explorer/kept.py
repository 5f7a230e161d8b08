"""Results kept for every session of the process: a small, locked, bounded store, least recently used dropped first.

One mechanism for the small results the app keeps beyond a request outside Streamlit's own caches (sweeps, answers,
measurements); large ones (models, quantized copies) are residents of explorer/memory.py's budget. Sessions run on their own threads, so every read and write holds the lock. cachetools' LRUCache
would need the same lock around it; this is the whole of it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable


class Kept:
    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default=None):
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def pop(self, key: Hashable, default=None):
        with self._lock:
            return self._entries.pop(key, default)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
