"""One memory budget for the shared process: everything large that outlives a request is a resident with its bytes.

Streamlit Community Cloud stops the one process every visitor shares at about 2.7 GB. Models, quantized copies and
the like are admitted here with their measured size; before a new one is admitted, the least recently used idle
residents are dropped until it fits. A resident in use is never dropped: a script run (or a queued job) that used it
holds a lease until it ends. A resident larger than the whole budget is refused with a sentence saying what to set.

    with BUDGET.run():                      # one script run (app.py) or one job (explorer/jobs.py)
        model = BUDGET.get_or_build(("model", "gemma3-270m"), load, estimate=1_072_000_000)
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

from explorer import process

DEFAULT_BUDGET_MB = 1_050  # residents. Outside it (bench_memory.py): the imports (~600 MB), one tokenizer per bundled
#   model (~140 MB), the capture cache and st.cache_data (<= 64 MB each); one request's room on top of those. Every
#   page must fit: SmolLM2's quantization table holds SmolLM2 513 + Kiwi ~290 (pinned) + a bf16 copy 212 MB, Gemma's
#   Gemma 511 (its table and block matrices in bf16) + Kiwi + an fp16 copy 191
WAIT_SECONDS = 30.0  # no room while others are in use: wait this long for a run to end before saying so
DEFAULT_IDLE_MINUTES = 10.0  # a resident nobody has used this long is dropped (0: never), so that a process nobody
#   visits holds its imports and Kiwi, not the last class's models and copies (bench_memory.py: 2.07 -> 1.20 GB at rest);
#   the next visitor reloads a model from the converted cache in well under a second, a quantized copy in seconds


class OverBudget(Exception):
    """A resident that cannot be admitted: larger than the budget, or no room while the others are in use."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail  # kind: "memory_over_budget" | "memory_busy"


@dataclass
class Resident:
    key: Hashable
    value: Any
    nbytes: int
    parent: Hashable | None = None  # dropped with its parent (a quantized copy shares its model's embeddings)
    pinned: bool = False  # never dropped: a native library that keeps its pages after it is freed (Kiwi, measured)
    leases: int = 0
    used: float = field(default_factory=time.monotonic)


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers, each storage counted once (tied weights, shared views)."""
    seen, total = set(), 0
    for tensor in (*module.parameters(), *module.buffers()):
        for part in _storages(tensor):
            pointer = part.untyped_storage().data_ptr()
            if pointer not in seen:
                seen.add(pointer)
                total += part.untyped_storage().nbytes()
    return total


def stored_bytes(tensor: torch.Tensor) -> int:
    """Bytes behind one tensor as stored: its storage, or a torchao tensor's codes, scales and zero points."""
    return sum(part.untyped_storage().nbytes() for part in _storages(tensor))


def _storages(tensor: torch.Tensor) -> list[torch.Tensor]:
    if type(tensor.data) is torch.Tensor or not hasattr(tensor, "tensor_data_names"):
        return [tensor.data]
    return [t for t in (getattr(tensor, name) for name in tensor.tensor_data_names) if t is not None]  # torchao


class Budget:
    def __init__(self, limit_bytes: int, idle_seconds: float = 0.0):
        self.limit = limit_bytes
        self.idle_seconds = idle_seconds  # unused this long: dropped by a background sweep (0: never)
        self.dropped = 0  # residents dropped to make room since start (a small budget reloads more)
        self.expired = 0  # residents dropped because nobody had used them for idle_seconds
        self._sweeper: threading.Thread | None = None
        self._residents: OrderedDict[Hashable, Resident] = OrderedDict()  # least recently used first
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)  # a lease ended: room may be made now
        self._builds: dict[Hashable, threading.Lock] = {}
        self._run = threading.local()  # .stack: the leases of this thread's runs (and jobs), outermost first

    # ------------------------------------------------------------ admitting

    def get_or_build(self, key: Hashable, build: Callable[[], Any], estimate: int = 0,
                     measure: Callable[[Any], int] | None = None, parent: Hashable | None = None,
                     pinned: bool = False):
        """The resident `key`, built (once, however many sessions ask at the same time) if it is not here. Room for
        `estimate` bytes is made before building, and for the measured size after. Leased to the current run. A
        `pinned` one stays for the life of the process, its bytes counted."""
        found = self._touch(key)
        if found is not None:
            return found
        with self._lock:
            build_lock = self._builds.setdefault(key, threading.Lock())
        with build_lock:
            found = self._touch(key)
            if found is not None:
                return found
            with self._lock:
                self._make_room(estimate, key)
            value = build()
            nbytes = (measure or _measure)(value)
            with self._lock:
                self._make_room(nbytes, key)
                self._residents[key] = Resident(key, value, nbytes, parent, pinned)
                self._lease(key)
                self._start_sweeper()
        return value

    def _touch(self, key: Hashable):
        with self._lock:
            resident = self._residents.get(key)
            if resident is None:
                return None
            resident.used = time.monotonic()
            self._residents.move_to_end(key)
            self._lease(key)
            return resident.value

    def _make_room(self, nbytes: int, key: Hashable) -> None:
        """Drop idle residents, least recently used first, until `nbytes` more fit; while the rest are in use by
        other runs, wait up to WAIT_SECONDS for one to end (two sessions on two models take turns), then say so.
        What this thread's own runs hold (a view's copy, then a table of copies in a run nested inside) cannot be
        waited for: that is said at once (it waited 30 s a copy, measured: Gemma's quantization page 137 s)."""
        if nbytes > self.limit:
            raise OverBudget("memory_over_budget", f"{key}: {nbytes / 2**20:,.0f} MB > {self.limit / 2**20:,.0f} MB")
        mine = self._held_here()
        pinned = [r for r in self._residents.values() if r.pinned and r.key not in mine]
        in_use = sum(r.nbytes for r in mine.values()) + sum(r.nbytes for r in pinned)
        if in_use + nbytes > self.limit:  # this thread's residents (and the pinned) leave no room: waiting cannot help
            raise OverBudget("memory_over_budget", f"{key}: {nbytes / 2**20:,.0f} MB + {in_use / 2**20:,.0f} MB in use "
                                                   f"on this page > {self.limit / 2**20:,.0f} MB")
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            dropped = self.dropped
            for candidate in list(self._residents):
                if self.used() + nbytes <= self.limit:
                    break
                if candidate in self._residents and self._idle(candidate):
                    self._drop(candidate)
                    self.dropped += 1
            if self.dropped > dropped:  # hand what they held back before the newcomer is built
                process.release_freed_memory(collect=True)
            if self.used() + nbytes <= self.limit:
                return
            left = deadline - time.monotonic()
            if left <= 0 or not self._others_hold(mine):
                raise OverBudget("memory_busy", f"{key}: {nbytes / 2**20:,.0f} MB; {self.used() / 2**20:,.0f} MB in use")
            self._released.wait(left)

    def _held_here(self) -> dict[Hashable, Resident]:
        """What this thread's runs hold, the outer ones' too."""
        return {key: resident for held in self._stack() for key, resident in held.items()}

    def _others_hold(self, mine: dict[Hashable, Resident]) -> bool:
        """Whether another run (or a job) holds a lease that may end while this one waits."""
        own = {key: sum(key in held for held in self._stack()) for key in mine}
        return any(r.leases > own.get(r.key, 0) for r in self._residents.values())

    def _idle(self, key: Hashable) -> bool:
        return all(r.leases == 0 and not r.pinned for r in self._residents.values() if r.key == key or r.parent == key)

    def _drop(self, key: Hashable) -> None:
        for dependent in [r.key for r in self._residents.values() if r.parent == key]:
            self._drop(dependent)
        self._residents.pop(key, None)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    # ------------------------------------------------------------ nobody here

    def drop_idle(self) -> int:
        """Drop every resident (with what was built from it) that no run holds and nobody has used for idle_seconds,
        and hand what they held back to the system. Pinned ones stay. Returns how many went."""
        if self.idle_seconds <= 0:
            return 0
        with self._lock:
            stale_before = time.monotonic() - self.idle_seconds
            gone = 0
            for key in list(self._residents):
                if key in self._residents and self._idle(key) and self._last_used(key) <= stale_before:
                    gone += sum(1 for r in self._residents.values() if r.key == key or r.parent == key)
                    self._drop(key)
            self.expired += gone
        if gone:
            process.release_freed_memory(collect=True)
        return gone

    def _last_used(self, key: Hashable) -> float:
        """When the resident or anything built from it (a model's quantized copy) was last used."""
        return max(r.used for r in self._residents.values() if r.key == key or r.parent == key)

    def expire_after(self, seconds: float) -> None:
        """From now on drop residents nobody has used for `seconds` (0: never)."""
        self.idle_seconds = max(0.0, seconds)
        if self._residents:
            self._start_sweeper()

    def _start_sweeper(self) -> None:
        """Once, with the first resident: a daemon thread that calls drop_idle now and then. It holds the budget
        weakly, so a budget nobody refers to any more (a test's) goes, and its thread with it."""
        if self.idle_seconds > 0 and self._sweeper is None:
            self._sweeper = threading.Thread(target=_sweep, args=(weakref.ref(self),), name="memory-idle-sweep",
                                             daemon=True)
            self._sweeper.start()

    # ------------------------------------------------------------ leases

    @contextmanager
    def run(self):
        """Within: every resident this thread gets is in use (one script run; a job's work). Runs nest: one inside
        a page's run holds its residents only until it ends."""
        stack = self._stack()
        stack.append({})
        try:
            yield
        finally:
            self._release(list(stack.pop().values()))

    def _stack(self) -> list[dict[Hashable, Resident]]:
        """This thread's runs, outermost first: each one's leases."""
        if not hasattr(self._run, "stack"):
            self._run.stack = []
        return self._run.stack

    def held(self) -> tuple:
        """The keys the current thread's runs hold: a job started now takes them along (`lease`)."""
        return tuple(self._held_here())

    def lease(self, keys) -> Callable[[], None]:
        """Hold the residents `keys` (those present) until the returned function is called: a queued job's models."""
        with self._lock:
            held = [self._residents[key] for key in keys if key in self._residents]
            for resident in held:
                resident.leases += 1
        return lambda: self._release(held)

    def _release(self, held: list[Resident]) -> None:
        with self._lock:
            for resident in held:  # the object itself: a key dropped by hand and built again starts at zero
                resident.leases -= 1
            self._released.notify_all()

    def _lease(self, key: Hashable) -> None:
        stack = self._stack()
        if stack and key not in stack[-1]:  # outside a run (a test, a bench) nothing is leased
            stack[-1][key] = self._residents[key]
            stack[-1][key].leases += 1

    # ------------------------------------------------------------ what is here

    def used(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._residents.values())

    def residents(self) -> list[Resident]:
        with self._lock:
            return list(self._residents.values())

    def get(self, key: Hashable):
        return self._touch(key)


def by_model(residents: list) -> list[tuple[str, int, int, int]]:
    """The residents grouped under the model they belong to, for the sidebar: (model, its own bytes and those of
    what was built from it (a vocabulary's norms, an adapter's view), how many quantized copies it has, their bytes),
    largest first. Keys are (kind, model, …)."""
    groups: dict[str, list[int]] = {}
    for resident in residents:
        key = resident.key
        model = str(key[1]) if isinstance(key, tuple) and len(key) > 1 else str(key)
        entry = groups.setdefault(model, [0, 0, 0])
        if not (isinstance(key, tuple) and key[0] == "quantized"):
            entry[0] += resident.nbytes
        else:
            entry[1] += 1
            entry[2] += resident.nbytes
    return sorted(((model, *entry) for model, entry in groups.items()), key=lambda row: -(row[1] + row[3]))


def resident_bytes() -> int:
    """This process's resident memory now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def grown_while(build: Callable[[], Any]) -> tuple[Any, int]:
    """build() and how much the process grew meanwhile: the size of what lives outside Python's and torch's view (a
    native library's model). Other threads' growth counts too: an estimate, not an exact count."""
    before = resident_bytes()
    value = build()
    return value, max(0, resident_bytes() - before)


def _measure(value) -> int:
    module = getattr(value, "model", value)
    return tensor_bytes(module) if isinstance(module, torch.nn.Module) else 0


def _sweep(budget_ref: weakref.ref) -> None:
    while (budget := budget_ref()) is not None:
        idle = budget.idle_seconds  # re-read each time: a bench shortens it after its walk
        pause = min(30.0, max(0.1, idle / 4)) if idle > 0 else 30.0
        del budget
        time.sleep(pause)
        budget = budget_ref()
        if budget is not None:
            budget.drop_idle()
        del budget


def budget_from_environment() -> Budget:
    megabytes = float(os.environ.get("EXPLORER_MEMORY_BUDGET_MB", DEFAULT_BUDGET_MB))
    minutes = float(os.environ.get("EXPLORER_IDLE_MINUTES", DEFAULT_IDLE_MINUTES))
    return Budget(int(megabytes * 2**20), idle_seconds=max(0.0, minutes) * 60)


BUDGET = budget_from_environment()  # the process's one budget
