"""Every page's first view in a real browser on a fresh server, as a visitor meets it (issue 23: <= 5 s each).

    python3 bench/bench_first_views.py          # Korean (Gemma) and English (SmolLM2), the defaults
    SHOTS=/tmp/shots python3 bench/bench_first_views.py   # and a screenshot of each page's first view
    python3 bench/bench_first_views.py transfer rag       # only these pages

A new `streamlit run` of the app starts its work that is the same for every visitor in the background once it
has served its first page (pages/views/warm_up.py). This bench opens the home page, waits WARM_UP_SECONDS for that
work, then opens each page in a new tab (a new session), in each language, and prints two times: until the page's
first figure or table is drawn, and until its run has ended (the server's script_finished message). A page that fills
in behind a progress bar (quantization) shows its first scheme before the run ends.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browsing import CHROMIUM, serve  # noqa: E402

PAGES = ("home", "tokens", "embeddings", "inside", "attention", "predict", "recurrent", "transfer", "finetune",
         "rag", "quantize", "lab", "lessons")
WARM_UP_SECONDS = 120  # measured: 50-85 s (bench_memory.py prints it)
TARGET_SECONDS = 5.0
SHOTS = Path(os.environ["SHOTS"]) if os.environ.get("SHOTS") else None  # SHOTS=folder: a screenshot of each first view
DRAWN = """() => !!document.querySelector('.js-plotly-plot, [data-testid="stDataFrame"], [data-testid="stTable"]')"""


def first_view(browser, url: str) -> tuple[float, float]:
    """Seconds until the first figure or table is drawn, and until the server says the page's run has finished
    (Streamlit's own script_finished message on the page's websocket: the DOM alone cannot tell a run that has not
    begun from one that has ended). A page with no figure or table before its run ends: its end is its first view."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    finished = []

    def read(frame) -> None:
        if isinstance(frame, bytes):
            message = ForwardMsg.FromString(frame)
            if message.WhichOneof("type") == "script_finished" \
                    and message.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY and not finished:
                finished.append(time.perf_counter())

    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.on("websocket", lambda socket: socket.on("framereceived", read))
    started = time.perf_counter()
    tab.goto(url)
    drawn = None
    while not finished and time.perf_counter() - started < 300:
        if drawn is None and tab.evaluate(DRAWN):
            drawn = time.perf_counter() - started
        tab.wait_for_timeout(50)
    if not finished:
        raise RuntimeError(f"{url}: its run did not finish in 300 s")
    done = finished[0] - started
    tab.wait_for_timeout(500)  # the last messages drawn
    if SHOTS:
        tab.screenshot(path=str(SHOTS / f"{url.rsplit('/', 1)[-1].replace('?', '-').replace('=', '')}.png"), full_page=True)
    failed = tab.locator('[data-testid="stException"]').count()
    tab.close()
    if failed:
        raise RuntimeError(f"{url}: an exception on the page")
    return done if drawn is None else min(drawn, done), done


def main() -> None:
    from playwright.sync_api import sync_playwright

    cache = Path(tempfile.mkdtemp(prefix="bench-first-views-"))  # no capture from an earlier run; the converted
    models = Path(os.environ.get("EXPLORER_CACHE_DIR", Path.home() / ".cache" / "llm-explorer")) / "models"
    (cache / "models").symlink_to(models)  # models are reused (a first conversion is bench_memory.py's)
    server = serve(EXPLORER_CACHE_DIR=str(cache))
    url = next(server)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        started = time.perf_counter()
        first_view(browser, f"{url}/?lang=ko")
        print(f"home on a fresh server (starts the warm-up): {time.perf_counter() - started:.1f} s; "
              f"waiting {WARM_UP_SECONDS} s for the warm-up", flush=True)
        time.sleep(WARM_UP_SECONDS)
        slowest = 0.0
        for language in ("ko", "en"):
            print(f"  {language}: first figure or table / run ended", flush=True)
            for page in sys.argv[1:] or PAGES:
                first, done = first_view(browser, f"{url}/{page}?lang={language}")
                slowest = max(slowest, first)
                print(f"    {page:<11} {first:5.1f} s / {done:5.1f} s {'' if first <= TARGET_SECONDS else '  over ' + str(TARGET_SECONDS)}",
                      flush=True)
        browser.close()
    print(f"slowest first view: {slowest:.1f} s (target {TARGET_SECONDS:g} s)")
    next(server, None)  # stops the server


if __name__ == "__main__":
    main()
