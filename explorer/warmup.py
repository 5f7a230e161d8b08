"""Work that is the same for every visitor, done once per process: started in the background once the process
has served its first page, so that no visitor's first view waits for it (the RNN pair's speed figures took 7–10 s on
the first view of the RNN page; Kiwi and the tokenizers ~3 s of the tokenization page's).

    once("rnn_speeds", measure)    # computed by the first caller; a caller meanwhile waits for the same result
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future
from typing import Any, Callable, Hashable

from explorer import process

_lock = threading.Lock()
_results: dict[Hashable, Future] = {}
_started = threading.Event()


def once(key: Hashable, build: Callable[[], Any]) -> Any:
    """build() the first time `key` is asked for in this process; every later (or concurrent) caller gets the same
    result. A build that fails is not kept: the next caller tries again."""
    with _lock:
        future = _results.get(key)
        mine = future is None
        if mine:
            future = _results[key] = Future()
    if mine:
        try:
            future.set_result(build())
        except BaseException as error:
            with _lock:
                _results.pop(key, None)
            future.set_exception(error)
    return future.result()


def pending(key: Hashable) -> bool:
    """Whether `key` is being built now (by another thread: the warm-up at start, another session)."""
    with _lock:
        future = _results.get(key)
    return future is not None and not future.done()


def enabled() -> bool:
    """EXPLORER_WARM_UP=0 skips the background work at start (the tests do: they measure each page's own path)."""
    return os.environ.get("EXPLORER_WARM_UP", "1") != "0"


def forget(key: Hashable) -> None:
    """The next caller of `once(key, …)` builds again (what was built is known to be damaged)."""
    with _lock:
        _results.pop(key, None)


def start(tasks: list[tuple[str, Callable[[], Any]]], wait: bool = False) -> bool:
    """Run `tasks` (name, function) one after another on a background thread (with `wait`, on this one), once per
    process (later calls do nothing: False). A task that fails is skipped: the page that needs it computes it, and
    says why, itself."""
    with _lock:
        if _started.is_set():
            return False
        _started.set()

    def run() -> None:
        for _, task in tasks:
            try:
                task()
            except Exception:  # noqa: BLE001 - the page asks again and shows the reason
                pass
            process.release_freed_memory()  # a task's temporaries (a tokenizer's load: ~270 MB) go back at once

    if wait:
        run()
    else:
        threading.Thread(target=run, name="warm-up", daemon=True).start()
    return True
