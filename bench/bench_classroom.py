"""Class mode on 2 CPU cores (issue "Class mode"): the store under a room answering at once, and real browser
sessions following a lecturer.

    python3 bench/bench_classroom.py [followers]     (default 6 real browser followers)

Prints: for 400 simulated students (threads against a SQLite store, two answers each, the second too soon):
answers lost and double-counted (both must be 0) and the time; for N real Chromium followers of a lecturer on one
server: the time from the lecturer's step change until every follower's page shows the new step, the server's CPU
per follower per poll while the class sits on a step, and the server's CPU per follower to redraw the step after a
move. From those: the largest class one process serves on 2 cores with follow latency <= 3 s.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil  # noqa: E402

from explorer import classroom  # noqa: E402
from pages.views.classroom import STUDENT_POLL_SECONDS as POLL  # noqa: E402

CORES = 2
LATENCY_TARGET = 3.0



def store_under_load(students: int = 400) -> None:
    folder = Path(tempfile.mkdtemp())
    store = classroom.Store(f"sqlite:///{folder / 'class.sqlite'}")
    code, _ = store.start("tokenization", 4)
    barrier = threading.Barrier(students)
    accepted = []

    def student(number: int) -> None:
        barrier.wait()
        for attempt in range(2):
            try:
                store.answer(code, f"s{number}", "tokenization_4", str(number + attempt))
                accepted.append(number)
            except classroom.ClassError:
                pass

    started = time.perf_counter()
    threads = [threading.Thread(target=student, args=(n,)) for n in range(students)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    counted = store.answers(code, "tokenization_4")
    lost = len(set(accepted)) - len(counted)
    print(f"store, {students} students answering at once (x2): {seconds:.2f} s; counted {len(counted)}, "
          f"lost {lost}, double-counted {len(accepted) - len(set(accepted))}")


def _serve(database: str):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "EXPLORER_CACHE_DIR": str(ROOT / ".cache"), "EXPLORER_CLASS_DB": database}
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                                str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open("/tmp/bench_server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return process, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("streamlit did not come up")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def followers(count: int) -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    server, url = _serve(f"sqlite:///{folder / 'class.sqlite'}")
    watched = psutil.Process(server.pid)

    def settle(page) -> None:
        page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=180_000)

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            lecturer = browser.new_page()
            lecturer.goto(f"{url}/lessons?lang=ko&model=smollm2-135m&lesson=tokenization&step=2", timeout=180_000)
            lecturer.get_by_text("수업 모드: 학생들이 각자 화면으로 따라오기").click(timeout=180_000)
            lecturer.get_by_role("button", name="수업 시작").click()
            code = lecturer.locator(".st-key-class_code").inner_text(timeout=60_000).strip()
            pages = []
            for _ in range(count):
                page = browser.new_page()
                page.goto(f"{url}/lessons?class={code}&lang=en", timeout=180_000, wait_until="commit")
                page.get_by_text("A model does not read letters").first.wait_for(timeout=180_000)
                pages.append(page)
            time.sleep(5)
            before, quiet = _cpu(watched), 20.0
            time.sleep(quiet)
            polls = count * quiet / POLL  # each follower asks every POLL seconds
            per_poll = (_cpu(watched) - before) / polls
            print(f"{count} followers sitting on a step: server CPU {per_poll * 1000:.1f} ms per follower per poll")
            before = _cpu(watched)
            moved = time.perf_counter()
            lecturer.get_by_role("button", name="다음 →").click()
            seen = []
            for page in pages:
                page.get_by_text("The four steps of tokenization").first.wait_for(timeout=120_000)
                seen.append(time.perf_counter() - moved)
            for page in pages:
                settle(page)
            time.sleep(1.5)
            redraw = (_cpu(watched) - before - count * (time.perf_counter() - moved) / POLL * per_poll) / count  # less the polls meanwhile
            print(f"lecturer moves: every follower shows the new step after {max(seen):.1f} s "
                  f"(first {min(seen):.1f} s, target <= {LATENCY_TARGET:g} s); server CPU to redraw the step "
                  f"{redraw * 1000:.0f} ms per follower")
            polling_limit = CORES * POLL / per_poll
            redraw_limit = CORES * (LATENCY_TARGET - POLL) / max(redraw, 1e-3)  # redrawn within the time left after a poll
            print(f"largest class on {CORES} cores with follow latency <= {LATENCY_TARGET:g} s: about "
                  f"{int(min(polling_limit, redraw_limit))} students (polling alone would allow {int(polling_limit)}; "
                  f"redrawing every follower's step after a move is the limit)")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    store_under_load()
    followers(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
