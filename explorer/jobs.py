"""One long job at a time per process, with a visible queue.

Every fine-tune the app offers (the encoder fine-tune, LoRA, DPO) and every long measurement (the lab's sweeps, RAG's
accuracy) is submitted here as a job. A single worker thread runs the jobs in order, so at most one job's memory is
ever in use; the others wait and can ask their place in line. A job reports each step (progress; a training's loss,
a measurement's own curves) and is stopped at its next step when cancelled or when nobody has looked at it for a
while (a learner closed the tab). A job carries the inputs it was started with, so that its result is kept for them,
not for whatever the page shows when it finishes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from explorer import memory, process

ABANDONED_SECONDS = 90.0  # a job nobody asked about for this long is cancelled (its page polls every second)


class Cancelled(Exception):
    """Raised inside a job's work at its next step after `Job.cancel`."""


class TrainingError(Exception):
    """A training refused before it starts (no examples, absurd settings…): `kind` names the message to show."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass
class Job:
    kind: str  # "lora", "dpo", "encoder", "lab_heads"…: what the page shows in the queue
    total_steps: int
    inputs: Any = None  # what it was started with (hashable): the key its result is kept under
    release: Callable[[], None] = lambda: None  # lets go of the memory residents it was started with
    status: str = "queued"  # queued -> running -> done | cancelled | failed
    step: int = 0
    losses: list[float] = field(default_factory=list)  # a training's loss per step; a measurement has none
    extra: dict[str, list[float]] = field(default_factory=dict)  # other per-step curves: the DPO margin, accuracy…
    result: Any = None
    error: str = ""  # kind of the message for a failed job ("out_of_memory", …)
    detail: str = ""
    started: float = 0.0
    seconds: float = 0.0
    seen: float = field(default_factory=time.monotonic)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def report(self, step: int, loss: float | None = None, **curves: float) -> None:
        """Called by the work after each step; raises Cancelled when the job should stop."""
        self.step = step
        if loss is not None:
            self.losses.append(float(loss))
        for name, value in curves.items():
            self.extra.setdefault(name, []).append(float(value))
        self.check()

    def check(self) -> None:
        if time.monotonic() - self.seen > ABANDONED_SECONDS:
            self._cancel.set()
        if self._cancel.is_set():
            raise Cancelled()

    def cancel(self) -> None:
        self._cancel.set()

    def touch(self) -> None:
        """The page that owns the job is still looking at it."""
        self.seen = time.monotonic()

    @property
    def finished(self) -> bool:
        """Ended and out of the queue: its memory handed back, the next job free to start."""
        return self._ended.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (done, cancelled or failed); False if `timeout` passed first."""
        return self._ended.wait(timeout)


class JobQueue:
    def __init__(self):
        self._waiting: deque[tuple[Job, Callable[[Job], Any]]] = deque()
        self._running: Job | None = None
        self._changed = threading.Condition()
        self._worker: threading.Thread | None = None

    def submit(self, kind: str, total_steps: int, work: Callable[[Job], Any], inputs: Any = None,
               leases: tuple = ()) -> Job:
        """Queue `work(job)`; its return value becomes `job.result`, kept by the caller under `inputs`. The residents
        named in `leases` (the models of the page that started it) are not dropped while it waits or runs."""
        job = Job(kind, total_steps, inputs, memory.BUDGET.lease(leases))
        with self._changed:
            self._waiting.append((job, work))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run_forever, name="jobs", daemon=True)
                self._worker.start()
            self._changed.notify()
        return job

    def ahead(self, job: Job) -> int:
        """How many jobs will run before this one (the one running included); 0 once it runs or has finished."""
        with self._changed:
            for index, (waiting, _) in enumerate(self._waiting):
                if waiting is job:
                    return index + (self._running is not None)
        return 0

    def busy(self) -> int:
        """Jobs running or waiting."""
        with self._changed:
            return len(self._waiting) + (self._running is not None)

    def _run_forever(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                job, work = self._waiting.popleft()
                self._running = job
            try:
                self._run(job, work)
            finally:
                with self._changed:
                    self._running = None
                job._ended.set()

    @staticmethod
    def _run(job: Job, work: Callable[[Job], Any]) -> None:
        job.started = time.monotonic()
        job.status = "running"
        try:
            with memory.BUDGET.run():
                job.check()  # cancelled or abandoned while it waited
                job.result = work(job)
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
        except TrainingError as error:
            job.error, job.detail, job.status = error.kind, error.detail, "failed"
        except (MemoryError, RuntimeError) as error:  # out of memory on a GPU raises a RuntimeError
            out_of_memory = isinstance(error, MemoryError) or "out of memory" in str(error).lower()
            job.error = "out_of_memory" if out_of_memory else "training_failed"
            job.detail, job.status = str(error)[:200], "failed"
        finally:
            job.seconds = time.monotonic() - job.started
            job.release()
            process.release_freed_memory(collect=True)


QUEUE = JobQueue()  # the process's one queue: every session's trainings and sweeps go through it
