"""Class mode on the lessons page: the lecturer starts a class and leads it; students join by code or link, follow
the lecturer's step, and answer its question; the room's answers appear live (stored by `explorer.classroom`)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from html import escape
from urllib.parse import parse_qs, urlsplit

import segno
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer import classroom, figures
from explorer.lessons import Question
from pages.common import lang, show_figure, tr, url_state

PARAMS = ("class",)
STUDENT_POLL_SECONDS = 0.75  # a follower sees the lecturer's step within this and one run: <= 2 s (bench_classroom)
LECTURER_POLL_SECONDS = 2.0
REDRAW_AFTER_SECONDS = 3.0  # a browser whose address still shows another step this long after a run has lost it


@dataclass(frozen=True)
class Lecturer:
    code: str
    token: str  # never shown, never in the address


@dataclass(frozen=True)
class Student:
    code: str
    id: str  # random per browser session: answers are anonymous


@st.cache_resource(show_spinner=False)
def _store(url: str) -> classroom.Store:
    return classroom.Store(url)


def store() -> classroom.Store | None:
    """The class store, or None with a sentence when its database cannot be reached (the lessons work alone)."""
    try:
        return _store(classroom.default_url())
    except classroom.ClassError as error:
        _say(error)
        return None


def _quiet_store() -> classroom.Store | None:
    """The store for a button's callback, which draws nothing: None when it cannot be reached."""
    try:
        return _store(classroom.default_url())
    except classroom.ClassError:
        return None


def _say(error: classroom.ClassError) -> None:
    st.warning(tr(f"class_{error.kind}", detail=escape(error.detail)))


def current() -> Lecturer | Student | None:
    """This session's place in a class, as `seat` left it."""
    return st.session_state.get("class_lecturer") or st.session_state.get("class_student")


def seat() -> Lecturer | Student | None:
    """Who this session is in a class: the lecturer who started it, a student who joined (the `?class=` link joins),
    or nobody."""
    lecturer = st.session_state.get("class_lecturer")
    if lecturer is not None:
        return lecturer
    typed = st.session_state.get(url_state("class", ""), "")
    student = st.session_state.get("class_student")
    if typed and (student is None or student.code != typed.upper()):
        _join(typed)
    return st.session_state.get("class_student")


def _join(typed: str) -> None:
    found = store()
    if found is None:
        return
    try:
        code = classroom.normalise_code(typed)
        if found.state(code).ended:
            raise classroom.ClassError("ended", code)
    except classroom.ClassError as error:
        _say(error)
        return
    st.session_state["class_student"] = Student(code, secrets.token_urlsafe(12))
    st.session_state["class"] = code


def follow(now: Lecturer | Student | None) -> None:
    """A following student's session takes the class's lesson and step (before the lesson is chosen)."""
    if not isinstance(now, Student) or not st.session_state.get("class_follow", True):
        return
    found = store()
    try:
        state = found.state(now.code) if found else None
    except classroom.ClassError:
        return
    if state is not None:
        st.session_state["lesson"], st.session_state["step"] = state.lesson, state.step


def panel(now: Lecturer | Student | None, lesson_id: str, step: int, presenting: bool) -> None:
    """The lecturer's class (start, the code large with its QR in presenter mode, end) or the student's (join,
    follow); the lecturer's moves reach the store here."""
    if isinstance(now, Lecturer):
        _lecturer_panel(now, lesson_id, step, presenting)
    elif isinstance(now, Student):
        _student_panel(now)
    elif not presenting:
        refused = st.session_state.pop("class_refused", None)
        if refused is not None:
            _say(refused)
        with st.expander(tr("class_title"), expanded=refused is not None):
            left, right = st.columns(2)
            left.button(tr("class_start"), key="class_start", on_click=_start, args=(lesson_id, step))
            right.text_input(tr("class_join"), key="class_join", placeholder="K7M2QP",
                             on_change=lambda: st.session_state.__setitem__("class", st.session_state["class_join"]))
            right.text_input(tr("class_nickname"), key="class_nick", max_chars=classroom.MAX_NICKNAME_CHARS)


def _start(lesson_id: str, step: int) -> None:
    try:
        code, token = _store(classroom.default_url()).start(lesson_id, step)
    except classroom.ClassError as error:  # said by the panel in the run this click starts
        st.session_state["class_refused"] = error
        return
    st.session_state["class_lecturer"] = Lecturer(code, token)
    st.session_state["class_position"] = (lesson_id, step)


def _join_link(code: str) -> str:
    address = urlsplit(st.context.url or "http://localhost:8501/")
    return f"{address.scheme}://{address.netloc}/lessons?class={code}&lang={lang()}"


def _lecturer_panel(now: Lecturer, lesson_id: str, step: int, presenting: bool) -> None:
    found = store()
    if found is None:
        return
    if st.session_state.get("class_position") != (lesson_id, step):
        try:
            found.move(now.code, now.token, lesson_id, step)
            st.session_state["class_position"] = (lesson_id, step)
        except classroom.ClassError as error:
            _say(error)
    link = _join_link(now.code)
    qr = segno.make(link, error="m").svg_data_uri(scale=7 if presenting else 4, dark="#111", light="#fff")
    with st.container(key="class_code_panel", border=True):
        code_column, qr_column = st.columns([3, 1])
        with code_column:
            st.caption(tr("class_join_at"))
            with st.container(key="class_code"):
                st.html(f'<div style="font-size:{"5.5rem" if presenting else "2.6rem"};font-weight:700;'
                        f'letter-spacing:0.3em;font-family:monospace">{escape(now.code)}</div>')
            st.caption(link)
        qr_column.html(f'<img src="{qr}" alt="QR: {escape(link)}" style="max-width:100%">')
        if not presenting:
            left, right = st.columns(2)
            left.download_button(tr("class_export"), lambda: found.export_csv(now.code, now.token).encode("utf-8-sig"),
                                 f"class-{now.code}.csv", "text/csv", key="class_export")
            right.button(tr("class_end"), key="class_end", on_click=_end, args=(now,))


def _end(now: Lecturer) -> None:
    found = _quiet_store()
    if found is not None:
        try:
            found.end(now.code, now.token)
        except classroom.ClassError:
            pass
    for key in ("class_lecturer", "class_position"):
        st.session_state.pop(key, None)


def _student_panel(now: Student) -> None:
    with st.container(key="class_student_panel", border=True):
        st.toggle(tr("class_follow"), key="class_follow", value=True)
        st.session_state["class_drawing"] = True  # until `drawn`: the poll below also runs inside this page run
        st.fragment(_poll, run_every=STUDENT_POLL_SECONDS)(now)


def _poll(now: Student) -> None:
    """Every poll: where the class is. A following student whose step differs, or whose question was just revealed,
    reruns the page."""
    found = store()
    if found is None:
        return
    try:
        state = found.state(now.code)
    except classroom.ClassError as error:
        _say(error)
        return
    if state.ended:
        st.info(tr("class_ended", detail=now.code))
        return
    st.caption(tr("class_in", detail=now.code))
    here = (st.session_state.get("lesson"), int(st.session_state.get("step", 0)))
    revealed = f"{here[0]}_{here[1]}" in state.revealed
    moved = st.session_state.get("class_follow", True) and (state.lesson, state.step) != here
    if moved or _lost_a_run(here) or revealed != st.session_state.get("class_revealed_seen", False):
        st.session_state["class_revealed_seen"] = revealed
        st.rerun(scope="app")


def drawn() -> None:
    """The lessons page's last line: its run has ended (the browser's address is rewritten with its step)."""
    st.session_state["class_drawing"] = False
    st.session_state["class_drawn_at"] = time.monotonic()


def _lost_a_run(here: tuple[str | None, int]) -> bool:
    """Whether this browser never drew the step this session last ran. Under load the browser can lose a run that a
    poll started (seen: the server ran step 4 to its end, the student's screen kept step 3 and was never redrawn), so
    each poll reads the address the browser sent with it, which every finished run rewrites. A poll sent while a run
    was still drawing carries the old address: only one sent REDRAW_AFTER_SECONDS after the run counts (measured:
    the address follows within 0.7–1.4 s)."""
    context = get_script_run_ctx()
    address = parse_qs(context.query_string if context else "")
    if ("step" not in address or st.session_state.get("class_drawing") or st.session_state.get("class_redrawn") == here
            or time.monotonic() - st.session_state.get("class_drawn_at", 0) < REDRAW_AFTER_SECONDS):
        return False  # once per step: a host that never shows the address is not rerun forever
    lost = (address.get("lesson", [None])[0], address["step"][0]) != (here[0], str(here[1]))
    if lost:
        st.session_state["class_redrawn"] = here
    return lost


# ---------------------------------------------------------------- the step's question

def reveal(now: Lecturer | Student | None, key: str) -> None:
    """The lecturer's reveal reaches the class."""
    found = _quiet_store() if isinstance(now, Lecturer) else None
    if found is not None:
        try:
            found.reveal(now.code, now.token, key)
        except classroom.ClassError:
            pass


def student_question(now: Student, key: str, asked: Question, live_answer) -> None:
    """The student's answer (one per question, a new one replaces it), then, once the lecturer reveals, the model's
    answer over the room's."""
    found = store()
    if found is None:
        return
    with st.container(key="class_guess"):
        widget = f"class_guess_{key}"
        if asked.kind == "choice":
            st.radio(tr("lesson_guess"), asked.options, index=None, key=widget, horizontal=True)
        elif asked.kind == "number":
            st.number_input(tr("lesson_guess"), value=None, step=1, key=widget)
        else:
            st.text_input(tr("lesson_guess"), key=widget, max_chars=classroom.MAX_ANSWER_CHARS)
        st.button(tr("class_send"), key="class_send", on_click=_send, args=(now, key, widget, asked))
        refused = st.session_state.pop("class_send_refused", None)
        if refused is not None:
            _say(refused)
        try:
            mine, state = found.mine(now.code, key, now.id), found.state(now.code)
        except classroom.ClassError as error:
            _say(error)
            return
        if mine is not None:
            st.caption(tr("class_sent", answer=escape(mine)))
    if key not in state.revealed:
        st.caption(tr("class_wait_reveal"))
        return
    answer = live_answer()
    if answer is not None:
        st.markdown(tr("lesson_answer", answer=escape(answer)))
        _distribution(found, now.code, key, asked, answer)


def _send(now: Student, key: str, widget: str, asked: Question) -> None:
    value = st.session_state.get(widget)
    if value in (None, ""):
        return
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if asked.kind == "choice" and str(value) not in asked.options:  # only a forged request gets here
        st.session_state["class_send_refused"] = classroom.ClassError("not_a_choice", str(value)[:40])
        return
    try:
        _store(classroom.default_url()).answer(now.code, now.id, key, str(value), st.session_state.get("class_nick", ""))
    except classroom.ClassError as error:
        st.session_state["class_send_refused"] = error


def lecturer_answers(now: Lecturer, key: str, asked: Question, answer: str | None) -> None:
    """How many have answered and what, live; the model's answer over it once revealed."""
    found = store()
    if found is not None:
        st.fragment(_room, run_every=LECTURER_POLL_SECONDS)(found, now.code, key, asked, answer)


def _room(found: classroom.Store, code: str, key: str, asked: Question, answer: str | None) -> None:
    _distribution(found, code, key, asked, answer)


def _distribution(found: classroom.Store, code: str, key: str, asked: Question, answer: str | None) -> None:
    try:
        given = found.answers(code, key)
    except classroom.ClassError as error:
        _say(error)
        return
    with st.container(key="class_answers"):
        st.metric(tr("class_answered"), len(given))
        if given:
            show_figure(figures.room_answers(asked.kind, given, asked.options, answer, tr("class_answers_title"),
                                             tr("class_count"), tr("class_model_answer")),
                        "class_answers", None, key=f"class_answers_{key}")
