"""Layer 3, in a real browser: sessions at once, trainings that queue, a class, the presenter and its handout, a
small budget shared by two models. Kept apart from test_browser.py so that the two test processes share the load.
"""

import pytest

from explorer import lessons

from browsing import ALL_TEXT, ARTIFACTS, NEEDS_CHROMIUM, assert_no_exception, finish, open_tab, serve, wait_until_done

pytestmark = NEEDS_CHROMIUM


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
        wait_until_done(tab)
        surprise = tab.locator(".st-key-surprisal")
        surprise.wait_for(timeout=180_000)
        tab.wait_for_function(f"() => ({ALL_TEXT})(document.querySelector('.st-key-surprisal')).includes('every')",
                              timeout=60_000)  # the chips have rendered
        shown = surprise.evaluate(ALL_TEXT)  # the chips' text, one span per token, joined
        assert animal in shown and texts[animal].split(" every ")[1].rstrip(".") in shown
        assert not [other for other in animals if other != animal and other in shown]
        assert tab.locator("textarea").first.input_value() == texts[animal]
        assert_no_exception(tab)
    finish(tabs.pop(animals[0]), "six-sessions-predict.png")
    for tab in tabs.values():
        tab.close()


def test_a_training_runs_in_the_browser_while_a_second_session_waits_its_turn(server, browser):
    """LoRA in Korean on SmolLM2 in one session; instruction tuning (SFT) of Gemma's base model, in English, waits
    its turn in another, then runs by itself."""
    first = open_tab(browser, f"{server}/finetune?lang=ko&model=smollm2-135m&lsteps=15", 3400)  # 15 steps teach "Juno"
    second = open_tab(browser, f"{server}/finetune?lang=en&model=gemma3-270m&part=sft&ssteps=1", 3400)
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
    wait_until_done(first)
    assert "Juno" in first.locator(".js-plotly-plot").nth(1).inner_text()  # the taught token, now likely
    second.locator(".st-key-sft_loss").wait_for(timeout=420_000)  # the second ran by itself once the first ended
    wait_until_done(second)
    finish(first, "finetune-lora-after-ko.png")
    finish(second, "finetune-sft-after-en.png")


def test_qlora_trains_in_the_browser_in_korean_and_opens_in_english(server, browser):
    korean = open_tab(browser, f"{server}/finetune?lang=ko&model=smollm2-135m&part=qlora&qsteps=2", 3000)
    korean.get_by_role("button", name="LoRA와 QLoRA 학습").click()
    table = korean.locator(".st-key-qlora_memory")
    table.wait_for(timeout=300_000)
    wait_until_done(korean)
    table.locator('[data-testid="stDataFrame"]').wait_for(timeout=60_000)  # a canvas grid (its cells are not text),
    #   drawn once its component has loaded: on a busy machine after the run has ended
    assert "마지막 손실 · QLoRA (int4 사본)" in korean.locator('[data-testid="stMain"]').inner_text()
    assert korean.locator(".st-key-qlora_losses .js-plotly-plot").count() == 1
    finish(korean, "finetune-qlora-after-ko.png")
    english = open_tab(browser, f"{server}/finetune?lang=en&model=gemma3-270m&part=qlora&qscheme=int8_channel", 1600)
    english.get_by_text("QLoRA: LoRA on a quantized model").wait_for(timeout=60_000)
    assert english.get_by_role("button", name="Train LoRA and QLoRA").is_enabled()
    finish(english, "finetune-qlora-en.png")


def test_a_class_follows_its_lecturer_and_the_room_sees_its_answers(server, browser):
    """A lecturer (Korean) starts a class; two students (English) join by its link, follow two steps, each answer;
    the lecturer sees 2 answers, reveals, and both students see the model's answer. No student has lecturer controls."""
    lecturer = open_tab(browser, f"{server}/lessons?lang=ko&model=smollm2-135m&lesson=tokenization&step=2", 2000)
    lecturer.get_by_text("수업 모드: 학생들이 각자 화면으로 따라오기").click()
    lecturer.get_by_role("button", name="수업 시작").click()
    lecturer.wait_for_function(f"() => {{ const box = document.querySelector('.st-key-class_code');"
                               f" return box && ({ALL_TEXT})(box).trim().length === 6; }}", timeout=30_000)
    code = lecturer.locator(".st-key-class_code").evaluate(ALL_TEXT).strip()  # drawn after its container, maybe later
    students = [open_tab(browser, f"{server}/lessons?class={code}&lang=en", 2000) for _ in range(2)]
    for student in students:
        student.get_by_text("A model does not read letters").first.wait_for(timeout=30_000)
        assert student.get_by_role("button", name="Start a class").count() == 0
        assert student.get_by_role("button", name="End the class").count() == 0
    count = len(next(lesson for lesson in lessons.load_all()[0] if lesson.id == "tokenization").steps)
    for step in (3, 4):  # each click has landed (its step is drawn) before the next: a click sent while the page
        lecturer.get_by_role("button", name="다음 →").click()  # still reruns is not lost, only later
        lecturer.get_by_text(f"{count}단계 중 {step}단계").wait_for(timeout=90_000)
        wait_until_done(lecturer)
    for student in students:  # followed within the poll (1.5 s) and one run (bench_classroom times it; here the
        student.get_by_text(f"Step 4 of {count}").wait_for(timeout=120_000)  # other test process may share the cores)
        wait_until_done(student)
        student.locator(".st-key-class_guess").wait_for(timeout=60_000)
    for number, student in enumerate(students):
        student.locator(".st-key-class_guess input").fill(str(20 + number))
        student.locator(".st-key-class_guess input").press("Enter")
        wait_until_done(student)
        student.get_by_role("button", name="Send my answer").click()
        student.get_by_text(f"Your answer: {20 + number}").wait_for(timeout=60_000)
    lecturer.locator(".st-key-class_answers").get_by_text("2", exact=True).wait_for(timeout=60_000)
    lecturer.get_by_role("button", name="답 확인").click()
    lecturer.get_by_text("모델에서 지금 계산한 답").wait_for(timeout=30_000)
    for student in students:
        student.get_by_text("The answer, computed live").wait_for(timeout=60_000)
        student.locator(".st-key-class_answers .js-plotly-plot").wait_for(timeout=60_000)
        assert_no_exception(student)
    finish(lecturer, "class-lecturer-ko.png")
    finish(students[0], "class-student-en.png")
    for student in students:
        student.close()


def test_chat_template_in_the_browser_shows_hangul_and_special_tokens(server, browser):
    page = open_tab(browser, f"{server}/finetune?lang=ko&part=chat&chatq=What is the capital of South Korea? 한국어로 답하지 않아도 됩니다.", 2400)
    page.locator(".st-key-chat_answer").get_by_text("Seoul").wait_for(timeout=120_000)
    wait_until_done(page)
    chips = page.locator('[data-testid="stHtml"]').first.inner_text()
    assert "<|im_start|>" in chips and all(syllable in chips for syllable in "한국어로") and "\ufffd" not in chips
    finish(page, "finetune-chat-ko.png")


def test_rag_answers_from_documents_typed_in_the_browser(server, browser):
    page = open_tab(browser, f"{server}/rag?lang=en", 4200)
    documents = page.locator(".st-key-rag_documents textarea")
    documents.fill("The Moonrise Bakery opens at 6:15 every morning.\n\n"
                   "<img src=x onerror=alert(1)> 달빛 빵집의 대표 빵은 쑥 식빵이다.")
    documents.press("Control+Enter")
    wait_until_done(page)
    question = page.locator(".st-key-q input")
    question.fill("When does the Moonrise Bakery open?")
    question.press("Enter")
    page.locator(".st-key-rag_answer").get_by_text("6:15").wait_for(timeout=120_000)
    wait_until_done(page)
    assert page.locator("img[src='x']").count() == 0  # the learner's HTML is shown as text, never rendered
    finish(page, "rag-own-documents-en.png")


def test_lab_patching_sweep_runs_in_the_browser_with_progress(server, browser):
    page = open_tab(browser, f"{server}/lab?lang=ko&model=smollm2-135m&tool=patch", 3000)  # byte-level BPE
    page.get_by_role("button", name="전체 탐색 시작").click()
    page.get_by_text("층 × 위치마다 패칭했을 때 돌아온 로짓 차이의 비율").wait_for(timeout=180_000)
    wait_until_done(page)
    main = page.locator('[data-testid="stMain"]').inner_text()
    assert "14: ␣빨" in main and "0xEB" not in main  # a byte piece of 빨 is labelled with its syllable, not its bytes
    assert "\ufffd" not in page.locator(".js-plotly-plot").first.inner_text()
    finish(page, "lab-patching-ko.png")


def test_presenter_mode_moves_with_arrow_keys_and_a_clicker_and_the_url_follows(server, browser):
    page = open_tab(browser, f"{server}/lessons?lang=ko&lesson=attention&step=1&present=1", 1000)
    page.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=30_000)  # one step, full width
    wait_until_done(page)
    page.wait_for_function("() => 'lesson_next' in (window.__streamlitShortcutsMap || {})", timeout=60_000)  # keys bound
    page.locator(".st-key-lesson_narrative").click()  # focus on the page, not on an input
    for key, step in (("ArrowRight", 2), ("PageDown", 3), ("ArrowLeft", 2), ("PageUp", 1)):
        page.keyboard.press(key)
        page.wait_for_url(f"**step={step}*", timeout=60_000)
        wait_until_done(page)
        page.get_by_text(f"6단계 중 {step}단계").wait_for(timeout=30_000)
    finish(page, "lesson-presenter-keys-ko.png")


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_presenter_screenshots_of_every_lessons_first_or_middle_step(server, browser, lang):
    """Every lesson once in presenter mode: every other one's first step in Korean, the others' middle step in
    English (every step of every lesson runs in both languages under AppTest)."""
    from explorer import lessons

    for lesson in lessons.load_all()[0][0 if lang == "ko" else 1::2]:
        for step in (1,) if lang == "ko" else ((len(lesson.steps) + 1) // 2,):
            page = open_tab(browser, f"{server}/lessons?lang={lang}&lesson={lesson.id}&step={step}&present=1", 1000)
            page.locator('[data-testid="stSidebar"]').wait_for(state="hidden", timeout=60_000)  # presenter mode drawn
            page.locator(".st-key-lesson_view").wait_for(timeout=60_000)
            wait_until_done(page)
            assert getattr(lesson.steps[step - 1].title, lang) in page.locator("h2").first.inner_text()
            finish(page, f"lesson-{lesson.id}-{step}-{lang}.png")


def test_the_handout_opens_offline_with_every_figure(server, browser, tmp_path):
    page = open_tab(browser, f"{server}/lessons?lang=ko&lesson=attention&step=2", 2000)
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
    small = serve(EXPLORER_MEMORY_BUDGET_MB="1300")
    url = next(small)
    try:
        gemma = browser.new_page(viewport={"width": 1400, "height": 2200})
        smollm = browser.new_page(viewport={"width": 1400, "height": 2200})
        gemma.goto(f"{url}/predict?lang=ko&model=gemma3-270m&ptext=나는 오늘 아침에")
        smollm.goto(f"{url}/predict?lang=en&model=smollm2-135m&ptext=The capital of France is")
        for page in (gemma, smollm):
            page.locator(".js-plotly-plot").first.wait_for(state="visible", timeout=240_000)
            wait_until_done(page)
            assert_no_exception(page)
        bars = [page.locator(".js-plotly-plot").first.inner_text() for page in (gemma, smollm)]
        assert "일어나" in bars[0] and "Paris" not in bars[0]  # Gemma's Korean candidates
        assert "Paris" in bars[1]  # SmolLM2's
        caption = smollm.locator('[data-testid="stSidebar"]').inner_text()
        assert "/ 1,300 MB" in caption
        gemma.screenshot(path=str(ARTIFACTS / "two-models-small-budget-gemma-ko.png"), full_page=True)
        finish(smollm, "two-models-small-budget-smollm-en.png")
        gemma.close()
    finally:
        next(small, None)  # stops the server
