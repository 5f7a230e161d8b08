"""Layer 3: the real server in a real browser (Debian's chromium through Playwright), every page opened.

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
PAGES = [  # (url path, query, what must be visible)
    ("", "lang=ko", "LLM 내부 탐색기"),  # the default page lives at the root
    ("", "lang=en", "LLM Internals Explorer"),
    ("inside", "lang=ko&model=smollm2-135m", "모델 구조"),
    ("inside", "lang=en&model=minilm-l6&stat=first", "Model shape"),
    ("inside", "lang=ko&model=minilm-l6&present=1", "모델 구조"),
    ("attention", "lang=ko&model=smollm2-135m&layer=3&head=mean", "헤드 뷰"),
    ("attention", "lang=en&model=minilm-l6&layer=2&head=5&role=self", "Head view"),
    ("tokens", "lang=ko&wnew=나는 어제 런던 여행을 다녀왔다", "사전에 없는 단어 2개: 어제, 런던"),
    ("tokens", "lang=en&tks=byte_bpe,wordpiece&special=1", "Same content, different cost"),
    ("embeddings", "lang=ko&model=smollm2-135m&find=queen", "어휘 전체 지도"),
    ("embeddings", "lang=en&model=minilm-l6&vdims=3", "The whole vocabulary on a map"),
    ("recurrent", "lang=ko&rtext=한국어와 English를 함께", "무엇을 기억해야 하나"),
    ("recurrent", "lang=en&gap=150", "What each has to remember"),
    ("predict", "lang=ko&ptext=대한민국의 수도는", "다음 토큰 후보"),
    ("predict", "lang=en&temp=0.7&topp=0.9", "Next-token candidates"),
    ("transfer", "lang=ko", "레이블이 몇 개나 필요할까"),
    ("transfer", "lang=en&ftlang=ko", "How many labels does it take?"),
    ("finetune", "lang=ko&part=reward", "보상 모델: 사람이 더 좋아한 답에 더 높은 점수를"),
    ("finetune", "lang=ko&part=api", "같은 요청, 한국어와 영어의 값"),
    ("finetune", "lang=en&part=dpo&dpreset=brief", "Preference tuning: liking the better answer more"),
    ("rag", "lang=ko", "2. 찾기: 두 가지 방법과 그 결합"),
    ("rag", "lang=en&k=3&method=bm25", "2. Retrieval: two ways, and both fused"),
    ("quantize", "lang=ko&model=smollm2-135m&grid=int8_tensor", "메모리: 파라미터 하나에 몇 바이트인가"),
    ("quantize", "lang=en&model=minilm-l6&group=64&sym=0", "Memory: bytes per parameter"),
    ("lab", "lang=ko", "직접 로짓 기여: 어느 층이 이 토큰을 밀었나"),
    ("lab", "lang=en&tool=steer&strength=6", "Steering: add a direction to the residual stream"),
]

ALL_TEXT = """element => {  // text under an element, inside shadow roots too (st.html may render in one)
  const walk = node => (node.shadowRoot ? walk(node.shadowRoot) : '')
    + [...node.childNodes].map(child => child.nodeType === Node.TEXT_NODE ? child.textContent : walk(child)).join('');
  return walk(element);
}"""

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (the test command installs it)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(**settings):
    """A streamlit server of the app on a free port, with `settings` added to its environment; yields its URL."""
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EXPLORER_CACHE_DIR": str(ROOT / ".cache"), **settings}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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
        pytest.fail("streamlit did not come up: " + process.stdout.read().decode(errors="replace")[-2000:])
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def server():
    yield from _serve()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield launched
        launched.close()


def _open(browser, url: str, height: int):
    """A new tab on `url`, returned once the app has finished its run."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    _wait_until_done(page)
    return page


def _assert_no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def _finish(page, screenshot: str) -> None:
    """No exception on the page; a full screenshot kept in tests/artifacts to be looked at; the tab closed."""
    _assert_no_exception(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.close()


def _wait_until_done(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
              && !document.querySelector('[data-testid="stSpinner"]')
              && !document.querySelector('[data-stale="true"]')""", timeout=180_000)
    page.wait_for_timeout(800)


@pytest.mark.parametrize("path, query, expected", PAGES)
def test_page_opens_with_its_figure_and_no_exception(server, browser, path, query, expected):
    page = _open(browser, f"{server}/{path}?{query}", 2200)
    page.get_by_text(expected).first.wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=180_000)  # a cold server on 2 cores
    assert page.get_by_text("Page not found").count() == 0
    assert f"lang={query.split('lang=')[1][:2]}" in page.url  # the address keeps the settings
    _wait_until_done(page)  # the page's last views too, before the screenshot
    if query.startswith("lang=ko"):  # Streamlit's own English never shows through in Korean (placeholders, spinner timers)
        main = page.locator('[data-testid="stMain"]').inner_text() + page.locator('[data-testid="stSidebar"]').inner_text()
        assert not [words for words in ("Choose an option", "Choose options", "seconds)") if words in main]
        assert page.title() == "LLM 내부 탐색기"  # the browser tab too
    _finish(page, f"{path or 'home'}-{query.split('&')[0].replace('=', '-')}-{len(query)}.png")


def test_switching_pages_keeps_settings_and_a_refused_model_keeps_the_current_one(server, browser):
    page = _open(browser, f"{server}/inside?lang=en&model=minilm-l6&stat=self", 2200)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_label("Hub model id (when online)", exact=True).fill("gpt2")
    sidebar.get_by_role("button", name="Load").click()
    page.get_by_text("No network").first.wait_for(timeout=60_000)
    _wait_until_done(page)
    assert "model=minilm-l6" in page.url
    _assert_no_exception(page)
    page.get_by_role("link", name="Home").first.click()
    _wait_until_done(page)
    page.get_by_text("LLM Internals Explorer").first.wait_for(timeout=30_000)
    assert "lang=en" in page.url and "model=minilm-l6" in page.url
    _finish(page, "refused-hub-model-then-home.png")


NAVIGATION_KO = {"": "홈", "tokens": "토큰화", "embeddings": "임베딩", "inside": "모델 들여다보기", "attention": "어텐션",
                 "predict": "다음 토큰 예측", "recurrent": "RNN 대 트랜스포머", "transfer": "전이 학습", "finetune": "미세조정",
                 "rag": "검색 증강 생성", "quantize": "양자화", "lab": "개입 실험실", "lessons": "강의"}  # url path -> entry


def test_every_page_is_in_the_menu_and_each_opens_after_the_others_with_no_exception(server, browser):
    """The whole menu is shown (13 entries: Streamlit folds it after 10 unless told), and one session walks it with
    every page's values kept, then goes back from RAG to RNN (they once shared the key k: 1-5 against 5-195)."""
    page = _open(browser, f"{server}/recurrent?lang=ko&gap=150&model=smollm2-135m", 2200)  # Gemma's pages: AppTest
    page.wait_for_url("**/recurrent?*gap=150*task=*", timeout=180_000, wait_until="commit")  # its first run ended
    menu = page.locator('[data-testid="stSidebarNav"]')
    menu.locator('a[href$="/lessons"]', has_text="강의").wait_for(timeout=60_000)  # the last entry, not behind "View 3 more"
    for path in [*NAVIGATION_KO, "recurrent", "rag", "recurrent"]:
        link = menu.locator(f'a[href$="/{path}"]')
        assert link.is_visible() and NAVIGATION_KO[path] in link.inner_text(), path
        link.click()
        page.wait_for_url(f"**/{path}?*lang=ko*", timeout=180_000, wait_until="commit")  # it ran and wrote its settings
        _wait_until_done(page)
        _assert_no_exception(page)
    assert "gap=150" in page.url  # the RNN page's own value came back with it
    page.close()


def test_switching_language_in_the_sidebar_then_moving_between_pages(server, browser):
    # Under AppTest the entry point's sidebar widgets lose their state after a rerun (DESIGN.md), so this runs here.
    page = _open(browser, f"{server}/?lang=ko", 1400)
    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.get_by_text("LLM Internals Explorer").first.wait_for(timeout=30_000)
    _wait_until_done(page)
    assert "lang=en" in page.url
    page.get_by_role("link", name="Inside the model").first.click()
    page.get_by_text("Model shape").first.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
    page.wait_for_url("**/inside?*lang=en*", timeout=30_000)  # the address keeps the settings
    _assert_no_exception(page)
    page.close()


def test_appending_tokens_completes_hangul_syllables(server, browser):
    page = _open(browser, f"{server}/predict?lang=ko&ptext=대한민국의 수도는", 3000)
    page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=60_000)
    for _ in range(3):  # a Hangul syllable is three UTF-8 bytes, often three byte-level tokens
        page.get_by_role("button", name="1등 토큰 붙이기").click()
        page.wait_for_timeout(1500)  # let the rerun start before waiting for it to end
        _wait_until_done(page)
    typed = page.locator("textarea").first.input_value()
    assert typed.startswith("대한민국의 수도는") and len(typed) > len("대한민국의 수도는") and "\ufffd" not in typed
    _finish(page, "predict-after-appending.png")


def test_attention_page_on_a_long_text_shows_an_overview_and_a_window(server, browser):
    page = _open(browser, f"{server}/attention?lang=en&model=smollm2-135m&layer=5", 2600)
    long_text = (ROOT / "assets" / "sample_long.txt").read_text(encoding="utf-8") * 4  # over 1,000 tokens
    page.locator("textarea").first.fill(long_text)
    page.keyboard.press("Control+Enter")
    page.get_by_text("the overview shows averages").first.wait_for(timeout=120_000)
    _wait_until_done(page)
    assert page.locator(".js-plotly-plot").count() >= 7
    _finish(page, "attention-long-text.png")


def test_tokenization_shows_hangul_bytes_not_stand_ins_and_the_merge_slider_moves(server, browser):
    page = _open(browser, f"{server}/tokens?lang=ko&ttext=안녕하세요 😀 토큰&bstep=40", 6000)
    try:
        page.get_by_role("heading", name="같은 내용, 다른 비용").wait_for(timeout=120_000)
    finally:
        page.screenshot(path=str(ARTIFACTS / "tokens-hangul-bytes-and-merges.png"), full_page=True)
    _wait_until_done(page)
    chips = page.locator('[data-testid="stHtml"]')
    chips.filter(has_text="안녕하세요").first.wait_for(timeout=60_000)  # the whitespace row's chip
    chips.filter(has_text="0xEC").first.wait_for(timeout=60_000)  # byte pieces shown as bytes…
    everything = page.locator('[data-testid="stMain"]').inner_text()
    assert not set("ĠìíëĪķ") & set(everything)  # …never as GPT-2's byte-to-letter stand-ins
    assert "병합 #40" in everything
    with page.expect_download() as download:  # the CSV is built when clicked, and carries the Hangul as typed
        page.get_by_role("button", name="토큰과 토큰 ID CSV").click()
    assert "안녕하세요" in Path(download.value.path()).read_text(encoding="utf-8-sig")
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    page.wait_for_url("**bstep=45*", timeout=60_000)
    _wait_until_done(page)
    page.get_by_text("병합 #45").first.wait_for(timeout=60_000)
    _finish(page, "tokens-hangul-bytes-and-merges.png")


def test_selecting_a_point_on_the_vocabulary_map_lists_its_neighbours(server, browser):
    page = _open(browser, f"{server}/embeddings?lang=ko&model=minilm-l6", 3000)
    page.get_by_role("heading", name="문장 임베딩과 검색 (RAG의 검색 절반)").wait_for(timeout=120_000)
    _wait_until_done(page)
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')]
      .some(p => p.data && p._fullData && p.data.some(t => t.type === 'scattergl'))""", timeout=120_000)  # drawn
    # what a click on a point sends: plotly's own selection event on the WebGL map (the Hangul trace comes first)
    token_id = page.evaluate("""() => {
      const map = [...document.querySelectorAll('.js-plotly-plot')].find(p => p.data && p.data.some(t => t.type === 'scattergl'));
      const trace = map._fullData[0], i = 10;
      map.emit('plotly_selected', {points: [{curveNumber: 0, pointNumber: i, pointIndex: i, x: trace.x[i], y: trace.y[i],
                                             customdata: trace.customdata[i], data: map.data[0], fullData: trace}]});
      return trace.customdata[i];
    }""")
    assert token_id is not None
    page.get_by_text("의 가장 가까운 토큰").first.wait_for(timeout=60_000)
    _wait_until_done(page)
    _finish(page, "embeddings-selected-point.png")


def test_recurrent_page_trains_both_models_live_in_korean(server, browser):
    page = _open(browser, f"{server}/recurrent?lang=ko&task=recall&steps=20&rtext=한국어와 English를 함께", 6400)
    page.get_by_role("heading", name="직접 학습시키기").wait_for(timeout=120_000)
    page.get_by_role("button", name="학습 시작 (새 가중치로 처음부터)").click()
    page.get_by_text("20단계 학습을 마쳤습니다").wait_for(timeout=180_000)
    _wait_until_done(page)
    assert "steps=20" in page.url and "task=recall" in page.url
    _finish(page, "recurrent-trained-live.png")


def test_six_sessions_at_once_each_see_only_their_own_text(server, browser):
    """One server, six tabs sent together with different texts: each tab's surprisal view (the engine's offsets over
    its text) holds its own words and no other tab's, and nothing fails while they share the model."""
    animals = ["tiger", "penguin", "giraffe", "octopus", "camel", "dolphin"]
    texts = {animal: f"My favourite animal is the {animal}, and I see it every {day}."
             for animal, day in zip(animals, ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "morning"])}
    tabs = {}
    for animal, text in texts.items():  # all requests are in flight before any is waited for
        tab = browser.new_page(viewport={"width": 1400, "height": 2400})
        tab.goto(f"{server}/predict?lang=en&ptext={text}", wait_until="commit")
        tabs[animal] = tab
    for animal, tab in tabs.items():
        _wait_until_done(tab)
        surprise = tab.locator(".st-key-surprisal")
        surprise.wait_for(timeout=180_000)
        tab.wait_for_function(f"() => ({ALL_TEXT})(document.querySelector('.st-key-surprisal')).includes('every')",
                              timeout=60_000)  # the chips have rendered
        shown = surprise.evaluate(ALL_TEXT)  # the chips' text, one span per token, joined
        assert animal in shown and texts[animal].split(" every ")[1].rstrip(".") in shown
        assert not [other for other in animals if other != animal and other in shown]
        assert tab.locator("textarea").first.input_value() == texts[animal]
        _assert_no_exception(tab)
    _finish(tabs.pop(animals[0]), "six-sessions-predict.png")
    for tab in tabs.values():
        tab.close()


def test_a_training_runs_in_the_browser_while_a_second_session_waits_its_turn(server, browser):
    """LoRA in Korean on SmolLM2 in one session; instruction tuning (SFT) of Gemma's base model, in English, waits
    its turn in another, then runs by itself."""
    first = _open(browser, f"{server}/finetune?lang=ko&model=smollm2-135m&lsteps=15", 3400)  # 15 steps teach "Juno"
    second = _open(browser, f"{server}/finetune?lang=en&model=gemma3-270m&part=sft&ssteps=1", 3400)
    first.get_by_role("button", name="학습 시작").click()
    first.locator(".st-key-training_lora").get_by_text("단계 · 손실").wait_for(timeout=60_000)  # progress, live
    second.get_by_role("button", name="Start training").click()
    queued = second.locator(".st-key-training_sft").get_by_text("Queued")
    queued.wait_for(timeout=30_000)
    assert "Ahead of yours: 1" in queued.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    first.screenshot(path=str(ARTIFACTS / "finetune-lora-training-ko.png"), full_page=True)
    second.screenshot(path=str(ARTIFACTS / "finetune-sft-queued-en.png"), full_page=True)
    first.locator(".st-key-lora_compare").wait_for(timeout=420_000)  # generous: a loaded 2-core machine
    first.locator(".js-plotly-plot").nth(1).wait_for(state="visible", timeout=60_000)
    _wait_until_done(first)
    assert "Juno" in first.locator(".js-plotly-plot").nth(1).inner_text()  # the taught token, now likely
    second.locator(".st-key-sft_loss").wait_for(timeout=420_000)  # the second ran by itself once the first ended
    _wait_until_done(second)
    _finish(first, "finetune-lora-after-ko.png")
    _finish(second, "finetune-sft-after-en.png")


def test_qlora_trains_in_the_browser_in_korean_and_opens_in_english(server, browser):
    korean = _open(browser, f"{server}/finetune?lang=ko&model=smollm2-135m&part=qlora&qsteps=2", 3000)
    korean.get_by_role("button", name="LoRA와 QLoRA 학습").click()
    table = korean.locator(".st-key-qlora_memory")
    table.wait_for(timeout=300_000)
    _wait_until_done(korean)
    assert table.locator('[data-testid="stDataFrame"]').count() == 1  # a canvas grid: its cells are not text
    assert "마지막 손실 · QLoRA (int4 사본)" in korean.locator('[data-testid="stMain"]').inner_text()
    assert korean.locator(".st-key-qlora_losses .js-plotly-plot").count() == 1
    _finish(korean, "finetune-qlora-after-ko.png")
    english = _open(browser, f"{server}/finetune?lang=en&model=gemma3-270m&part=qlora&qscheme=int8_channel", 1600)
    english.get_by_text("QLoRA: LoRA on a quantized model").wait_for(timeout=60_000)
    assert english.get_by_role("button", name="Train LoRA and QLoRA").is_enabled()
    _finish(english, "finetune-qlora-en.png")


def test_a_class_follows_its_lecturer_and_the_room_sees_its_answers(server, browser):
    """A lecturer (Korean) starts a class; two students (English) join by its link, follow two steps, each answer;
    the lecturer sees 2 answers, reveals, and both students see the model's answer. No student has lecturer controls."""
    lecturer = _open(browser, f"{server}/lessons?lang=ko&model=smollm2-135m&lesson=tokenization&step=2", 2000)
    lecturer.get_by_text("수업 모드: 학생들이 각자 화면으로 따라오기").click()
    lecturer.get_by_role("button", name="수업 시작").click()
    code = lecturer.locator(".st-key-class_code").inner_text(timeout=30_000).strip()
    assert len(code) == 6
    students = [_open(browser, f"{server}/lessons?class={code}&lang=en", 2000) for _ in range(2)]
    for student in students:
        student.get_by_text("A model does not read letters").first.wait_for(timeout=30_000)
        assert student.get_by_role("button", name="Start a class").count() == 0
        assert student.get_by_role("button", name="End the class").count() == 0
    for _ in range(2):
        lecturer.get_by_role("button", name="다음 →").click()
        _wait_until_done(lecturer)
    for student in students:  # followed within the poll (1.5 s) and one run (bench_classroom times it)
        student.locator(".st-key-class_guess").wait_for(timeout=15_000)
    for number, student in enumerate(students):
        student.locator(".st-key-class_guess input").fill(str(20 + number))
        student.locator(".st-key-class_guess input").press("Enter")
        _wait_until_done(student)
        student.get_by_role("button", name="Send my answer").click()
        student.get_by_text(f"Your answer: {20 + number}").wait_for(timeout=15_000)
    lecturer.locator(".st-key-class_answers").get_by_text("2", exact=True).wait_for(timeout=15_000)
    lecturer.get_by_role("button", name="답 확인").click()
    lecturer.get_by_text("모델에서 지금 계산한 답").wait_for(timeout=30_000)
    for student in students:
        student.get_by_text("The answer, computed live").wait_for(timeout=15_000)
        student.locator(".st-key-class_answers .js-plotly-plot").wait_for(timeout=15_000)
        _assert_no_exception(student)
    _finish(lecturer, "class-lecturer-ko.png")
    _finish(students[0], "class-student-en.png")
    for student in students:
        student.close()


def test_chat_template_in_the_browser_shows_hangul_and_special_tokens(server, browser):
    page = _open(browser, f"{server}/finetune?lang=ko&part=chat&chatq=What is the capital of South Korea? 한국어로 답하지 않아도 됩니다.", 2400)
    page.locator(".st-key-chat_answer").get_by_text("Seoul").wait_for(timeout=120_000)
    _wait_until_done(page)
    chips = page.locator('[data-testid="stHtml"]').first.inner_text()
    assert "<|im_start|>" in chips and all(syllable in chips for syllable in "한국어로") and "\ufffd" not in chips
    _finish(page, "finetune-chat-ko.png")


def test_rag_answers_from_documents_typed_in_the_browser(server, browser):
    page = _open(browser, f"{server}/rag?lang=en", 4200)
    documents = page.locator(".st-key-rag_documents textarea")
    documents.fill("The Moonrise Bakery opens at 6:15 every morning.\n\n"
                   "<img src=x onerror=alert(1)> 달빛 빵집의 대표 빵은 쑥 식빵이다.")
    documents.press("Control+Enter")
    _wait_until_done(page)
    question = page.locator(".st-key-q input")
    question.fill("When does the Moonrise Bakery open?")
    question.press("Enter")
    page.locator(".st-key-rag_answer").get_by_text("6:15").wait_for(timeout=120_000)
    _wait_until_done(page)
    assert page.locator("img[src='x']").count() == 0  # the learner's HTML is shown as text, never rendered
    _finish(page, "rag-own-documents-en.png")


def test_lab_patching_sweep_runs_in_the_browser_with_progress(server, browser):
    page = _open(browser, f"{server}/lab?lang=ko&model=smollm2-135m&tool=patch", 3000)  # byte-level BPE
    page.get_by_role("button", name="전체 탐색 시작").click()
    page.get_by_text("층 × 위치마다 패칭했을 때 돌아온 로짓 차이의 비율").wait_for(timeout=180_000)
    _wait_until_done(page)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "14: ␣빨" in main and "0xEB" not in main  # a byte piece of 빨 is labelled with its syllable, not its bytes
    assert "\ufffd" not in page.locator(".js-plotly-plot").first.inner_text()
    _finish(page, "lab-patching-ko.png")


def test_presenter_mode_moves_with_arrow_keys_and_a_clicker_and_the_url_follows(server, browser):
    page = _open(browser, f"{server}/lessons?lang=ko&lesson=attention&step=1&present=1", 1000)
    page.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=30_000)  # one step, full width
    _wait_until_done(page)
    page.wait_for_function("() => 'lesson_next' in (window.__streamlitShortcutsMap || {})", timeout=60_000)  # keys bound
    page.locator(".st-key-lesson_narrative").click()  # focus on the page, not on an input
    for key, step in (("ArrowRight", 2), ("PageDown", 3), ("ArrowLeft", 2), ("PageUp", 1)):
        page.keyboard.press(key)
        page.wait_for_url(f"**step={step}*", timeout=60_000)
        _wait_until_done(page)
        page.get_by_text(f"6단계 중 {step}단계").wait_for(timeout=30_000)
    _finish(page, "lesson-presenter-keys-ko.png")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_presenter_screenshots_of_every_lessons_first_or_middle_step(server, browser, lang):
    """Every lesson once in presenter mode: every other one's first step in Korean, the others' middle step in
    English (every step of every lesson runs in both languages under AppTest)."""
    from explorer import lessons

    for lesson in lessons.load_all()[0][0 if lang == "ko" else 1::2]:
        for step in (1,) if lang == "ko" else ((len(lesson.steps) + 1) // 2,):
            page = _open(browser, f"{server}/lessons?lang={lang}&lesson={lesson.id}&step={step}&present=1", 1000)
            page.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=60_000)  # presenter mode drawn
            page.locator(".st-key-lesson_view").wait_for(timeout=60_000)
            _wait_until_done(page)
            assert getattr(lesson.steps[step - 1].title, lang) in page.locator("h2").first.inner_text()
            _finish(page, f"lesson-{lesson.id}-{step}-{lang}.png")


def test_the_handout_opens_offline_with_every_figure(server, browser, tmp_path):
    page = _open(browser, f"{server}/lessons?lang=ko&lesson=attention&step=2", 2000)
    page.get_by_role("button", name="핸드아웃 만들기 (HTML)").click()
    button = page.get_by_role("button", name="핸드아웃 내려받기")
    button.wait_for(timeout=300_000)  # the page walks every step once, collecting its figures
    page.wait_for_url("**step=2*", timeout=30_000)  # back where the lecturer was
    with page.expect_download() as download:
        button.click()
    handout = tmp_path / "attention.html"
    download.value.save_as(handout)
    page.close()
    html = handout.read_text(encoding="utf-8")
    figures = html.count('class="figure"')
    assert figures >= 6 and html.count("Plotly.newPlot") == figures
    context = browser.new_context(offline=True)
    context.route("http*://**", lambda route: route.abort())  # nothing may be fetched
    offline = context.new_page()
    offline.goto(handout.as_uri())
    offline.wait_for_function(f"document.querySelectorAll('.figure.js-plotly-plot').length === {figures}", timeout=60_000)
    assert "어텐션 패턴 읽기" in offline.locator("h2").first.inner_text()
    offline.screenshot(path=str(ARTIFACTS / "lesson-handout-offline-ko.png"), full_page=False)
    context.close()


def test_two_sessions_on_two_models_under_a_small_budget_each_get_their_own_models_answer(browser):
    """Gemma (1,023 MB) and SmolLM2 (513 MB) do not fit a 1,300 MB budget together: the sessions take turns, each
    model dropped for the other while no page uses it, and each page shows its own model's prediction."""
    small = _serve(EXPLORER_MEMORY_BUDGET_MB="1300")
    url = next(small)
    try:
        gemma = browser.new_page(viewport={"width": 1400, "height": 2200})
        smollm = browser.new_page(viewport={"width": 1400, "height": 2200})
        gemma.goto(f"{url}/predict?lang=ko&model=gemma3-270m&ptext=나는 오늘 아침에")
        smollm.goto(f"{url}/predict?lang=en&model=smollm2-135m&ptext=The capital of France is")
        for page in (gemma, smollm):
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=240_000)
            _wait_until_done(page)
            _assert_no_exception(page)
        bars = [page.locator(".js-plotly-plot").first.inner_text() for page in (gemma, smollm)]
        assert "일어나" in bars[0] and "Paris" not in bars[0]  # Gemma's Korean candidates
        assert "Paris" in bars[1]  # SmolLM2's
        caption = smollm.locator('[data-testid="stSidebar"]').inner_text()
        assert "/ 1,300 MB" in caption
        gemma.screenshot(path=str(ARTIFACTS / "two-models-small-budget-gemma-ko.png"), full_page=True)
        _finish(smollm, "two-models-small-budget-smollm-en.png")
        gemma.close()
    finally:
        next(small, None)  # stops the server
