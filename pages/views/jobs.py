"""The panel every queued job shares (fine-tunes, sweeps, measurements): its place in the process's one queue,
progress, a training's live loss, cancel."""

from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from explorer import figures, jobs, memory
from pages.common import show_error, tr

POLL_SECONDS = 1.0
MEASUREMENTS = {"rag_eval": "rag_eval_progress", "lab_heads": "lab_progress", "lab_patch": "lab_progress",
                "lab_patch_heads": "lab_progress", "lab_layers": "lab_progress"}  # kind -> progress text (no loss)


def _noun(kind: str) -> str:
    """What the panel calls it: a measurement is no training."""
    return "job" if kind in MEASUREMENTS else "training"


def _job_key(kind: str) -> str:
    return f"job_{kind}"


def start_button(label: str, kind: str, total_steps: int, work: Callable[[jobs.Job], object], inputs=None,
                 container=st, **button) -> None:
    """A button that queues `work` for this session. `inputs` (hashable) is what the work was built from: `on_done`
    gets it back with the job, whatever the page shows then. The models this run holds stay resident until the job
    ends (the click's callback runs before the next run holds anything, so they are named now)."""
    container.button(label, key=f"start_{kind}", on_click=_start,
                     args=(kind, total_steps, work, inputs, memory.BUDGET.held()), **button)


def _start(kind: str, total_steps: int, work, inputs, uses: tuple) -> None:
    """One job per kind at a time for this session; the panel shows it from the next run on."""
    running = st.session_state.get(_job_key(kind))
    if running is not None and not running.finished:
        running.cancel()  # a new request replaces this session's previous one
    st.session_state[_job_key(kind)] = jobs.QUEUE.submit(kind, total_steps, work, inputs, leases=uses)


def panel(kind: str, on_done: Callable[[jobs.Job], None]) -> None:
    """While this session's job waits or runs: its place in line or its progress, refreshed every second.
    When it ends: `on_done(job)` for a finished one (its result belongs to `job.inputs`), else why it stopped."""
    job = st.session_state.get(_job_key(kind))
    if job is None:
        return
    if not job.finished:
        st.fragment(_progress, run_every=POLL_SECONDS)(kind)
        return
    del st.session_state[_job_key(kind)]
    if job.status == "done":
        on_done(job)
    elif job.status == "cancelled":
        st.info(tr(f"{_noun(kind)}_cancelled", step=job.step, total=job.total_steps))
    else:
        show_error(jobs.TrainingError(job.error, job.detail))


def _progress(kind: str) -> None:
    job = st.session_state.get(_job_key(kind))
    if job is None:
        return
    job.touch()
    with st.container(key=f"training_{kind}"):
        if job.finished:
            st.rerun(scope="app")  # the page draws the results
        if job.status == "queued":
            st.info(tr(f"{_noun(kind)}_queued", ahead=jobs.QUEUE.ahead(job)), icon="⏳")
        elif job.step == 0:
            st.progress(0.0, text=tr("job_starting"))
        elif kind in MEASUREMENTS:  # its own curves (say, accuracy so far) fill its text; no loss
            latest = {name: values[-1] for name, values in job.extra.items()}
            st.progress(min(1.0, job.step / max(1, job.total_steps)),
                        text=tr(MEASUREMENTS[kind], step=job.step, total=job.total_steps, **latest))
        else:
            st.progress(min(1.0, job.step / max(1, job.total_steps)),
                        text=tr("training_progress", step=job.step, total=job.total_steps, loss=job.losses[-1]))
            st.plotly_chart(loss_figure(job.losses, height=300), key=f"live_loss_{kind}", config={"displaylogo": False})
        st.button(tr(f"{_noun(kind)}_cancel"), key=f"cancel_{kind}", on_click=job.cancel)


def loss_figure(losses: list[float], height: int = 420):
    return figures.lines({tr("loss"): (range(1, len(losses) + 1), losses)}, tr("loss_title"), tr("training_step"),
                         tr("loss"), height=height)


def loss_data(losses: list[float], extra: dict[str, list[float]] | None = None) -> pd.DataFrame:
    data = {"step": range(1, len(losses) + 1), "loss": losses}
    data |= {name: values for name, values in (extra or {}).items()}
    return pd.DataFrame(data)
