"""Class mode's store on a real database: SQLite in a temporary file, and PostgreSQL where this machine has one."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from explorer import classroom


def _concurrent_answers(url: str) -> None:
    """200 answers from 100 students at once (each answers twice, quickly): exactly 100 counted, none lost. The clock
    stands still, so every second answer comes too soon however slow the machine (on a busy one some came more than
    MIN_SECONDS_BETWEEN_ANSWERS later and rightly replaced the first)."""
    store = classroom.Store(url, clock=lambda: 2_000_000.0)
    code, _ = store.start("tokenization", 4)
    refused = []
    barrier = threading.Barrier(50)

    def student(number: int) -> None:
        barrier.wait()
        for attempt in range(2):  # the second comes too soon: refused, and never counted twice
            try:
                store.answer(code, f"student-{number}", "tokenization_4", str(number % 7 + attempt))
            except classroom.ClassError as error:
                refused.append(error.kind)

    threads = [threading.Thread(target=student, args=(n,)) for n in range(100)]
    for thread in threads[:50]:
        thread.start()
    for thread in threads[50:]:
        thread.start()
    for thread in threads:
        thread.join()
    counted = store.answers(code, "tokenization_4")
    assert len(counted) == 100 == store.count(code, "tokenization_4")
    assert sorted(counted) == sorted(str(n % 7) for n in range(100))  # each student's first answer, none lost
    assert refused == ["too_fast"] * 100


def _lifecycle(store: classroom.Store, now: list[float]) -> None:
    code, token = store.start("attention", 1)
    assert classroom.CODE_PATTERN.fullmatch(code) and token not in code
    store.move(code, token, "attention", 3)
    assert (store.state(code).lesson, store.state(code).step) == ("attention", 3)
    for forged in ("", "x" * 32, token[:-1]):
        with pytest.raises(classroom.ClassError, match="forbidden"):
            store.move(code, forged, "attention", 5)
    store.answer(code, "s1", "attention_3", "=HYPERLINK(\"x\")", nickname="<b>Kim</b>" * 20)
    now[0] += 2
    store.answer(code, "s1", "attention_3", "2")  # a changed answer replaces the first
    assert store.answers(code, "attention_3") == ["2"] and store.mine(code, "attention_3", "s1") == "2"
    store.reveal(code, token, "attention_3")
    assert store.state(code).revealed == {"attention_3"}
    exported = store.export_csv(code, token)
    assert exported.splitlines()[0] == "question,answer,nickname,time" and "attention_3,2," in exported
    with pytest.raises(classroom.ClassError, match="forbidden"):
        store.export_csv(code, "forged")
    store.end(code, token)
    with pytest.raises(classroom.ClassError, match="ended"):
        store.answer(code, "s2", "attention_3", "1")
    now[0] += classroom.LIFETIME_SECONDS + 1  # the class expires: gone, with its answers
    with pytest.raises(classroom.ClassError, match="unknown_class"):
        store.state(code)
    assert store.count(code, "attention_3") == 0
    for typed, expected in (("abc-de", None), ("abc-def", "ABCDEF"), ("  k7m 2qp ", "K7M2QP"), ("<script>", None), ("A" * 10_000, None)):
        if expected is None:
            with pytest.raises(classroom.ClassError, match="malformed_code"):
                classroom.normalise_code(typed)
        else:
            assert classroom.normalise_code(typed) == expected


def test_the_sqlite_store_counts_every_student_once_and_forgets_an_expired_class(tmp_path):
    now = [1_000_000.0]
    store = classroom.Store(f"sqlite:///{tmp_path / 'class.sqlite'}", clock=lambda: now[0])
    _lifecycle(store, now)
    _concurrent_answers(f"sqlite:///{tmp_path / 'class.sqlite'}")
    again = classroom.Store(f"sqlite:///{tmp_path / 'class.sqlite'}")  # a restarted app finds its classes
    code, token = again.start("rag", 2)
    assert classroom.Store(f"sqlite:///{tmp_path / 'class.sqlite'}").state(code).step == 2


def test_a_database_that_cannot_be_reached_is_a_refusal_not_a_crash(tmp_path):
    for url in ("postgresql+psycopg://nobody:wrong@127.0.0.1:1/none", "notadialect://x", f"sqlite:///{tmp_path}"):
        with pytest.raises(classroom.ClassError) as refused:
            classroom.Store(url)
        assert refused.value.kind == "store_unavailable"


def _postgres_binaries() -> Path | None:
    for folder in [*sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True), Path("/usr/local/bin")]:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@pytest.fixture(scope="module")
def postgres_url():
    """A real PostgreSQL server, started for these tests in a temporary folder (Debian's `postgresql` package)."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed here (Debian's postgresql package): the SQLite store was tested")
    folder = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
    user = {"preexec_fn": None}
    if os.geteuid() == 0:  # initdb refuses to run as root: run it as nobody
        shutil.chown(folder, "nobody")
        user = {"user": "nobody"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"
    subprocess.run([binaries / "initdb", "-D", data, "-U", "explorer", "--auth=trust"], check=True,
                   capture_output=True, **user)
    subprocess.run([binaries / "pg_ctl", "-D", data, "-o", f"-p {port} -k {folder} -h 127.0.0.1", "-w", "start",
                    "-l", folder / "log"], check=True, capture_output=True, **user)
    try:
        yield f"postgresql+psycopg://explorer@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([binaries / "pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True, **user)
        shutil.rmtree(folder, ignore_errors=True)


def test_the_postgresql_store_counts_every_student_once_and_forgets_an_expired_class(postgres_url):
    now = [1_000_000.0]
    _lifecycle(classroom.Store(postgres_url, clock=lambda: now[0]), now)
    _concurrent_answers(postgres_url)
    time.sleep(0)


# ---------------------------------------------------------------- the class screens (AppTest)

def _app(lang: str, **query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
    at.query_params.update({"lang": lang, "model": "smollm2-135m", **query})
    at.switch_page("pages/lessons.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_a_lecturer_leads_a_class_and_a_student_follows_answers_and_sees_the_reveal(lang, tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_CLASS_DB", f"sqlite:///{tmp_path / 'class.sqlite'}")
    lecturer = _app(lang, lesson="tokenization", step="3")
    lecturer.button(key="class_start").click().run()
    seat = lecturer.session_state["class_lecturer"]
    assert any(seat.code in h.proto.body for h in lecturer.get("html"))  # the code, large (class_code)
    assert seat.token not in str(lecturer.query_params) and seat.token not in "".join(h.proto.body for h in lecturer.get("html"))
    student = _app(lang, **{"class": seat.code.lower()})  # the link's code, typed in lower case
    assert (student.session_state["lesson"], student.session_state["step"]) == ("tokenization", 3)  # followed
    assert not [b for b in student.button if b.key in ("class_start", "class_end", "class_export")]  # no lecturer controls
    lecturer.button(key="lesson_next").click().run()  # the lecturer moves to the question step
    student.run()
    assert student.session_state["step"] == 4
    student.number_input(key="class_guess_tokenization_4").set_value(12).run()
    student.button(key="class_send").click().run()
    assert not student.exception
    assert any("12" in c.value for c in student.caption)
    lecturer.run()
    assert lecturer.metric[0].value == "1"  # class_answers: one student has answered
    lecturer.button(key="reveal_tokenization_4").click().run()
    student.run()
    from explorer import lessons

    expected = lessons.live_answer("token_count", None, {"text": "안녕하세요, 반갑습니다.", "tokenizer": "byte_bpe"})
    assert any(f"**{expected}**" in m.value for m in student.markdown)  # the model's answer, once revealed
    assert student.get("plotly_chart")  # the room's answers, after the reveal
    forged = _app(lang, **{"class": seat.code})
    forged.session_state["class_lecturer"] = type(seat)(seat.code, "forged")  # a student who forges the token
    forged.button(key="lesson_next").click().run()
    assert any(w for w in forged.warning) and classroom.Store(f"sqlite:///{tmp_path / 'class.sqlite'}").state(seat.code).step == 4


def test_bad_codes_and_an_unreachable_database_leave_the_lessons_working(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_CLASS_DB", f"sqlite:///{tmp_path / 'class.sqlite'}")
    for typed in ("<b>x</b>", "ZZZZZZ", "A" * 10_000):
        at = _app("ko", **{"class": typed})
        assert at.warning and "class_student" not in at.session_state
        assert at.get("plotly_chart") or at.header  # the lesson itself still runs
    monkeypatch.setenv("EXPLORER_CLASS_DB", "postgresql+psycopg://nobody:wrong@127.0.0.1:1/none")
    at = _app("en", lesson="tokenization", step="4")
    at.button(key="class_start").click().run()
    assert not at.exception and "class_lecturer" not in at.session_state
    assert at.header and any("class store cannot be reached" in w.value for w in at.warning)
