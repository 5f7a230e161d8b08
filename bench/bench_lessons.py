"""Lessons on 2 CPU cores (issue 17): a lesson's first view, and moving to the next step once its view is cached.

    python3 bench/bench_lessons.py

Targets: the first view of a lesson <= 5 s (models loaded, as on a running server); moving to the next step <= 1 s
when its view is cached (the lecturer rehearsed, or another session showed it). Printed per bundled lesson.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer import lessons, process  # noqa: E402


def open_lesson(lesson: str) -> tuple[AppTest, float]:
    started = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params.update({"lang": "ko", "lesson": lesson, "step": "1", "present": "1"})
    at.switch_page("pages/lessons.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at, time.perf_counter() - started


def walk(at: AppTest) -> list[float]:
    """Seconds for each click on 'next' through the whole lesson."""
    seconds = []
    while not at.button(key="lesson_next").disabled:
        started = time.perf_counter()
        at.button(key="lesson_next").click().run()
        seconds.append(time.perf_counter() - started)
        assert not at.exception, [e.value for e in at.exception]
    return seconds


def main() -> None:
    process.tune_allocator()
    open_lesson("tokenization")  # the models load once, as on a server that has been up
    for lesson in lessons.load_all()[0]:
        at, first = open_lesson(lesson.id)
        cold = walk(at)
        again, _ = open_lesson(lesson.id)
        warm = walk(again)
        print(f"{lesson.id:<22} first view {first:5.2f} s (target <= 5 s) · next step, first time: max {max(cold):5.2f} s "
              f"· next step, cached: mean {sum(warm) / len(warm):4.2f} s, max {max(warm):4.2f} s (target <= 1 s)")


if __name__ == "__main__":
    main()
