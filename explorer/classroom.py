"""Class mode's store: a lecturer's class (a join code, the lesson and step the class is on, the questions revealed)
and the students' answers, in a real database.

SQLite by default (one file in the cache folder, WAL mode: readers never wait for the one writer, and a class
survives a restart of the app); `EXPLORER_CLASS_DB` takes any SQLAlchemy URL, so that several app processes behind
a load balancer share one class (PostgreSQL: `postgresql+psycopg://user:pass@host/db`). SQLAlchemy Core writes the
SQL for each dialect; the one dialect-specific statement is the upsert, built from each dialect's own `insert`.

Who may do what: only the holder of the lecturer token (kept in the lecturer's session, stored here as a hash)
moves, reveals, exports or ends a class. Students are anonymous: a random id per browser session, an optional
nickname only the lecturer's export shows. One answer per student per question: a new answer replaces the old, and
answers closer together than `MIN_SECONDS_BETWEEN_ANSWERS` are refused, so a flood counts once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Integer, MetaData, String, Table, create_engine, delete,
                        event, func, insert, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off a projector
CODE_LENGTH = 6
CODE_PATTERN = re.compile(rf"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
LIFETIME_SECONDS = 12 * 3600
MIN_SECONDS_BETWEEN_ANSWERS = 1.0
MAX_ANSWER_CHARS = 200
MAX_NICKNAME_CHARS = 30

metadata = MetaData()
classes = Table(
    "classes", metadata,
    Column("code", String(CODE_LENGTH), primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("lesson", String(100), nullable=False),
    Column("step", Integer, nullable=False),
    Column("revealed", String(2000), nullable=False, default=""),  # question keys, one per line
    Column("ended", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False, index=True),
)
answers = Table(
    "answers", metadata,
    Column("code", String(CODE_LENGTH), ForeignKey("classes.code", ondelete="CASCADE"), primary_key=True),
    Column("question", String(120), primary_key=True),  # "<lesson>_<step>"
    Column("student", String(40), primary_key=True),
    Column("answer", String(MAX_ANSWER_CHARS), nullable=False),
    Column("nickname", String(MAX_NICKNAME_CHARS), nullable=False, default=""),
    Column("updated", Float, nullable=False),
)


class ClassError(Exception):
    """A refusal with a reason the page names: `kind` is unknown_class, ended, malformed_code, forbidden,
    too_fast, store_unavailable (and the page's own not_a_choice)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass
class ClassState:
    code: str
    lesson: str
    step: int
    revealed: set[str] = field(default_factory=set)
    ended: bool = False


def default_url() -> str:
    from explorer.models import cache_dir

    return os.environ.get("EXPLORER_CLASS_DB") or f"sqlite:///{Path(cache_dir()) / 'classroom.sqlite'}"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str:
    """A code as typed (lower case, spaces, a dash) made canonical; refused when it cannot be one."""
    code = re.sub(r"[\s\-]", "", typed or "").upper()
    if not CODE_PATTERN.fullmatch(code):
        raise ClassError("malformed_code", typed[:20])
    return code


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, url: str | None = None, clock: Callable[[], float] = time.time):
        self.url, self.clock = url or default_url(), clock
        try:
            if self.url.startswith("sqlite:///"):
                Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})
                event.listen(self.engine, "connect", _sqlite_pragmas)
            else:
                self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, ImportError, OSError) as error:
            raise ClassError("store_unavailable", str(error).splitlines()[0][:160]) from error

    def _run(self, work):
        try:
            with self.engine.begin() as connection:
                return work(connection)
        except SQLAlchemyError as error:
            raise ClassError("store_unavailable", str(error).splitlines()[0][:160]) from error

    # ------------------------------------------------------------ the lecturer

    def start(self, lesson: str, step: int) -> tuple[str, str]:
        """A new class on `lesson`/`step`: (its join code, the lecturer's secret token)."""
        token, now = secrets.token_urlsafe(24), self.clock()

        def work(connection):
            connection.execute(delete(classes).where(classes.c.expires < now))  # expired classes go, answers too
            connection.execute(delete(answers).where(~answers.c.code.in_(select(classes.c.code))))
            while True:
                code = new_code()
                if connection.execute(select(classes.c.code).where(classes.c.code == code)).first() is None:
                    break
            connection.execute(insert(classes).values(code=code, token_hash=_hash(token), lesson=lesson, step=step,
                                                      revealed="", ended=False, created=now,
                                                      expires=now + LIFETIME_SECONDS))
            return code
        return self._run(work), token

    def _lecturer(self, connection, code: str, token: str) -> None:
        row = connection.execute(select(classes.c.token_hash, classes.c.ended, classes.c.expires)
                                 .where(classes.c.code == code)).first()
        if row is None or row.expires < self.clock():
            raise ClassError("unknown_class", code)
        if not secrets.compare_digest(row.token_hash, _hash(token or "")):
            raise ClassError("forbidden", code)
        if row.ended:
            raise ClassError("ended", code)

    def move(self, code: str, token: str, lesson: str, step: int) -> None:
        def work(connection):
            self._lecturer(connection, code, token)
            connection.execute(update(classes).where(classes.c.code == code).values(lesson=lesson, step=step))
        self._run(work)

    def reveal(self, code: str, token: str, question: str) -> None:
        def work(connection):
            self._lecturer(connection, code, token)
            shown = connection.execute(select(classes.c.revealed).where(classes.c.code == code)).scalar_one()
            if question not in shown.splitlines():
                connection.execute(update(classes).where(classes.c.code == code)
                                   .values(revealed="\n".join([*shown.splitlines(), question])[-2000:]))
        self._run(work)

    def end(self, code: str, token: str) -> None:
        def work(connection):
            self._lecturer(connection, code, token)
            connection.execute(update(classes).where(classes.c.code == code).values(ended=True))
        self._run(work)

    def export_csv(self, code: str, token: str) -> str:
        """Every answer of the class (question, answer, nickname, time), for the lecturer only."""
        def work(connection):
            self._lecturer_or_ended(connection, code, token)
            return connection.execute(select(answers.c.question, answers.c.answer, answers.c.nickname,
                                             answers.c.updated).where(answers.c.code == code)
                                      .order_by(answers.c.question, answers.c.updated)).all()
        rows = self._run(work)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["question", "answer", "nickname", "time"])
        for row in rows:
            writer.writerow([row.question, _csv_safe(row.answer), _csv_safe(row.nickname),
                             time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.updated))])
        return out.getvalue()

    def _lecturer_or_ended(self, connection, code: str, token: str) -> None:
        try:
            self._lecturer(connection, code, token)
        except ClassError as error:
            if error.kind != "ended":  # a finished class can still be exported by its lecturer
                raise

    # ------------------------------------------------------------ everyone

    def state(self, code: str) -> ClassState:
        """Where the class is; refused for an unknown or expired code (an expired class is deleted now)."""
        now = self.clock()

        def work(connection):
            row = connection.execute(select(classes).where(classes.c.code == code)).first()
            if row is not None and row.expires < now:
                connection.execute(delete(answers).where(answers.c.code == code))
                connection.execute(delete(classes).where(classes.c.code == code))
                row = None
            return row
        row = self._run(work)
        if row is None:
            raise ClassError("unknown_class", code)
        return ClassState(row.code, row.lesson, row.step, set(filter(None, row.revealed.splitlines())), row.ended)

    def answer(self, code: str, student: str, question: str, value: str, nickname: str = "") -> None:
        """The student's answer to `question`, replacing their earlier one; refused when the class is unknown or over,
        or when it comes too soon after their last."""
        value, nickname = value.strip()[:MAX_ANSWER_CHARS], nickname.strip()[:MAX_NICKNAME_CHARS]
        now = self.clock()
        if self.state(code).ended:
            raise ClassError("ended", code)
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[self.engine.dialect.name]
        statement = dialect.insert(answers).values(code=code, question=question, student=student, answer=value,
                                                   nickname=nickname, updated=now)
        statement = statement.on_conflict_do_update(
            index_elements=[answers.c.code, answers.c.question, answers.c.student],
            set_={"answer": value, "nickname": nickname, "updated": now},
            where=answers.c.updated <= now - MIN_SECONDS_BETWEEN_ANSWERS).returning(answers.c.updated)
        if self._run(lambda connection: connection.execute(statement).first()) is None:  # the update was held back
            raise ClassError("too_fast", f"{MIN_SECONDS_BETWEEN_ANSWERS:g} s")

    def answers(self, code: str, question: str) -> list[str]:
        """The answers to one question, one per student (anonymous)."""
        return list(self._run(lambda connection: connection.execute(
            select(answers.c.answer).where(answers.c.code == code, answers.c.question == question)).scalars()))

    def count(self, code: str, question: str) -> int:
        return int(self._run(lambda connection: connection.execute(
            select(func.count()).select_from(answers).where(answers.c.code == code,
                                                           answers.c.question == question)).scalar_one()))

    def mine(self, code: str, question: str, student: str) -> str | None:
        return self._run(lambda connection: connection.execute(
            select(answers.c.answer).where(answers.c.code == code, answers.c.question == question,
                                           answers.c.student == student)).scalar())


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _csv_safe(text: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: such an answer is written as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
