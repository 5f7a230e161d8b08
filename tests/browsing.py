"""What the browser tests share: the real server of the app, Debian's chromium through Playwright, and the waits.

Screenshots are kept in tests/artifacts/ to be looked at.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (the test command installs it)")

ALL_TEXT = """element => {  // text under an element, inside shadow roots too (st.html may render in one)
  const walk = node => (node.shadowRoot ? walk(node.shadowRoot) : '')
    + [...node.childNodes].map(child => child.nodeType === Node.TEXT_NODE ? child.textContent : walk(child)).join('');
  return walk(element);
}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(**settings):
    """A streamlit server of the app on a free port, with `settings` added to its environment; yields its URL."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EXPLORER_CACHE_DIR": str(ROOT / ".cache"), **settings}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"server-{port}.log"  # a file, never an unread pipe: a full pipe (64 KB of the server's
    with log.open("wb") as output:  # log) blocks whichever of its threads writes next, and the app stalls
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not come up: " + log.read_text(errors="replace")[-2000:])
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def server():
    yield from serve()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield launched
        launched.close()


def open_tab(browser, url: str, height: int):
    """A new tab on `url`, returned once the app has finished its run."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    wait_until_done(page)
    return page


def assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def finish(page, screenshot: str) -> None:
    """No exception on the page; a full screenshot kept in tests/artifacts to be looked at; the tab closed."""
    assert_no_exception(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.close()


def wait_until_done(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
              && !document.querySelector('[data-testid="stSpinner"]')
              && !document.querySelector('[data-stale="true"]')""", timeout=180_000)
    page.wait_for_timeout(800)

