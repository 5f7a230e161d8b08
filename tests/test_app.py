"""Layer 2: every page under AppTest, in both languages, with the interactions a learner makes.

Settings arrive the way a lecturer's link brings them: as query parameters. A test that names no model runs on
SmolLM2 (what these tests measure is its behaviour); the language's own default model has its tests (Korean opens
on Gemma 3) in test_default_model_follows_the_language and tests/test_gemma.py.
"""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from explorer.kept import Kept

TIMEOUT = 180
APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _open(page: str | None = None, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"model": "smollm2-135m", **query})
    at.run()
    if page:
        at.switch_page(page).run()
    _no_exception(at)
    return at


def _open_link(page: str, **query) -> AppTest:
    """A deep link straight to `page` (its own settings in the address), as a lecturer prepares before class."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({"model": "smollm2-135m", **query})
    at.switch_page(page).run()
    _no_exception(at)
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    """Every plotly figure on the page as sent to the browser, by its title."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {spec["layout"].get("title", {}).get("text", ""): spec for spec in specs}


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _refused_and_kept(at: AppTest, key: str, text: str, message: str) -> None:
    """Type `text` into the text area `key`: refused with `message`, no exception, the text kept as typed."""
    at.text_area(key=key).set_value(text).run()
    _no_exception(at)
    assert any(message in e.value for e in at.error)
    assert at.text_area(key=key).value == text


def test_every_url_key_belongs_to_one_view_and_every_page_declares_its_views_keys():
    """A key two pages share carries one page's value into the other's widget (RNN's distance 5-195 met RAG's k 1-5)."""
    import importlib
    import re

    from pages.common import GLOBAL_PARAMS

    root = Path(APP).parent
    owners: dict[str, list[str]] = {}
    for path in sorted((root / "pages" / "views").glob("*.py")):
        used = set(re.findall(r'url_state\("(\w+)"', path.read_text(encoding="utf-8")))
        if not used:
            continue
        declared = importlib.import_module(f"pages.views.{path.stem}").PARAMS
        assert used == set(declared), f"{path.name}: PARAMS {declared} but url_state keys {sorted(used)}"
        for name in declared:
            owners.setdefault(name, []).append(path.stem)
    shared = {name: views for name, views in owners.items() if len(views) > 1 or name in GLOBAL_PARAMS}
    assert not shared, f"URL keys used by more than one view: {shared}"
    for path in sorted((root / "pages").glob("*.py")):
        if path.stem in ("__init__", "common"):
            continue
        text = path.read_text(encoding="utf-8")
        assert "url_state(" not in text, f"{path.name}: a page keeps no URL state of its own; its views declare it"
        assert re.search(r"^page\((\*\w+\.PARAMS\b|\)|title=)", text, re.M), f"{path.name}: page(*view.PARAMS) is its first call"


def test_a_value_kept_from_elsewhere_or_out_of_range_falls_back_instead_of_raising():
    at = _open_link("pages/recurrent.py", lang="en", gap="150")
    at.session_state["_keep_gap"] = 1  # as another page (or an older link) could have left it: below the slider's 5
    at.switch_page("pages/home.py").run()
    at.switch_page("pages/recurrent.py").run()
    _no_exception(at)
    assert at.slider(key="gap").value == 5
    at = _open_link("pages/attention.py", lang="en", layer="29", head="8", focus="3")  # SmolLM2: 30 layers, 9 heads
    at.session_state["_keep_model"] = "minilm-l6"  # the learner picks a model with 6 layers and 12 heads
    at.run()
    _no_exception(at)
    assert at.slider(key="layer").value == 5 and at.session_state["head"] == 8


@pytest.mark.parametrize("lang, title", [("ko", "LLM 내부 탐색기"), ("en", "LLM Internals Explorer")])
def test_home_runs_in_both_languages(lang, title):
    at = _open(lang=lang)
    assert at.title[0].value == title
    assert at.query_params["lang"] == lang
    assert len(at.get("plotly_chart")) == 2  # timeline and parameter counts


@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_inside_page_with_both_models(model, lang):
    at = _open("pages/inside.py", lang=lang, model=model)
    assert at.get("plotly_chart"), "the head map is drawn"
    assert at.query_params["model"] == model and at.query_params["lang"] == lang
    at.session_state["stat"] = "first"  # AppTest cannot call a format_func that reads session state
    at.run()
    _no_exception(at)
    assert at.query_params["stat"] == "first"


def test_inside_page_refuses_empty_text_without_losing_the_page():
    at = _open("pages/inside.py", lang="en", model="minilm-l6")
    at.text_area(key="text").set_value("   ").run()
    _no_exception(at)
    assert any("Type some text" in e.value for e in at.error)


def test_inside_page_handles_long_and_odd_text():
    at = _open("pages/inside.py", lang="ko", model="minilm-l6")
    at.text_area(key="text").set_value("한국어 🙂 zero\u200bwidth " * 300).run()
    _no_exception(at)
    assert any("잘라냈습니다" in w.value for w in at.warning)
    assert at.text_area(key="text").value.startswith("한국어 🙂")  # the text is kept as typed


def test_unreachable_hub_model_in_a_link_falls_back_to_the_bundled_model():
    at = _open(lang="en", model="gpt2")
    assert any("No network" in e.value for e in at.error)
    assert at.session_state["_keep_model"] == "smollm2-135m"
    at.switch_page("pages/inside.py").run()
    _no_exception(at)
    assert at.get("plotly_chart"), "the page still works on the bundled model"


def test_presenter_mode_from_the_link_enlarges_type_and_figures():
    plain, presenting = _open(), _open(present="1")
    assert presenting.session_state["_keep_present"] is True and presenting.query_params["present"] == "1"
    css = [element.proto.body for element in presenting.get("html") if "font-size" in element.proto.body]
    assert css and "3.2rem" in css[0]  # headings and body text for the back row
    assert not [element for element in plain.get("html") if "font-size: 1.5rem" in element.proto.body]
    for title, spec in _charts(presenting).items():
        assert spec["layout"]["font"]["size"] == 22, title  # figures too, not only the page text
    assert {spec["layout"]["font"]["size"] for spec in _charts(plain).values()} == {14}



@pytest.mark.parametrize("lang", ["ko", "en"])
def test_prediction_page(lang):
    at = _open("pages/predict.py", lang=lang)
    assert len(at.get("plotly_chart")) == 2  # next-token bars and the logit lens
    at.session_state["temp"] = 0.0
    at.session_state["topp"] = 0.5
    at.run()
    _no_exception(at)
    assert at.query_params["temp"] == "0.0" and at.query_params["topp"] == "0.5"


def test_a_model_dropped_for_room_is_loaded_again_when_its_page_reruns_and_the_sidebar_shows_the_budget():
    from explorer import memory

    at = _open_link("pages/predict.py", lang="en", ptext="The capital of France is")
    key = ("model", "smollm2-135m")
    memory.BUDGET.drop(key)  # as when another session needed the room while this page stayed open
    at.run()
    _no_exception(at)
    assert key in [resident.key for resident in memory.BUDGET.residents()]
    bars = _charts(at)["Next-token candidates (grey: cut by top-k/top-p)"]
    assert "Paris" in bars["data"][0]["y"][0]  # "1. ␣Paris": the same model's answer as before it was dropped
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert "Memory budget" in caption and "smollm2-135m" in caption


def test_prediction_page_explains_that_an_encoder_cannot_predict():
    at = _open("pages/predict.py", lang="en", model="minilm-l6")
    assert any("needs a decoder" in i.value for i in at.info)


LONG_TEXT = (Path(__file__).resolve().parent.parent / "assets" / "sample_long.txt").read_text(encoding="utf-8") * 4


@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_attention_page_with_both_models(model, lang):
    at = _open("pages/attention.py", lang=lang, model=model)
    assert len(at.get("plotly_chart")) >= 7  # one head, all heads, head view, roles, rollout, encoder vs decoder
    at.session_state["layer"] = 3
    at.session_state["head"] = 2
    at.run()
    _no_exception(at)
    assert at.query_params["layer"] == "3" and at.query_params["head"] == "2"


@pytest.mark.parametrize("text", ["안", LONG_TEXT])
def test_attention_page_with_one_token_and_a_long_text(text):
    at = _open("pages/attention.py", lang="ko", model="smollm2-135m")
    at.text_area(key="atext").set_value(text).run()
    _no_exception(at)
    assert at.get("plotly_chart")
    if len(text) > 1000:
        assert any("토큰이" in i.value for i in at.info)  # the long-text overview is explained


def test_attention_page_long_text_on_the_encoder_is_truncated_with_a_notice():
    at = _open("pages/attention.py", lang="en", model="minilm-l6")
    at.text_area(key="atext").set_value(LONG_TEXT).run()
    _no_exception(at)
    assert any("cut" in w.value for w in at.warning)


def test_attention_page_highlights_a_chosen_token():
    at = _open("pages/attention.py", lang="en", model="minilm-l6")
    at.session_state["focus"] = 3
    at.run()
    _no_exception(at)
    assert any("looks most at" in c.value for c in at.caption)
    assert at.query_params["focus"] == "3"


@pytest.mark.parametrize("text", ["A", LONG_TEXT])
def test_prediction_page_with_one_token_and_a_long_text(text):
    at = _open("pages/predict.py", lang="en")
    at.text_area(key="ptext").set_value(text).run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) == 2


def test_attention_head_view_draws_several_heads_and_the_grid_frames_the_focus_token():
    at = _open("pages/attention.py", lang="ko", model="smollm2-135m")
    at.session_state["lines"] = [0, 4, 8]
    at.session_state["focus"] = 5
    at.run()
    _no_exception(at)
    assert at.query_params["lines"] == "0,4,8" and at.query_params["focus"] == "5"
    charts = _charts(at)
    head_view = next(spec for title, spec in charts.items() if title.startswith("헤드 뷰"))
    drawn_heads = {trace["name"] for trace in head_view["data"] if trace.get("showlegend")}
    assert drawn_heads == {"헤드 0 (KV 0)", "헤드 4 (KV 1)", "헤드 8 (KV 2)"}  # each chosen head in its own colour
    grid = next(spec for title, spec in charts.items() if title.startswith("층 0의 모든 헤드"))
    frames = [shape for shape in grid["layout"]["shapes"] if shape["type"] == "rect"]
    assert len(frames) == 9  # the focus token's row framed in every head
    assert {round(shape["y1"] - shape["y0"]) for shape in frames} == {1}  # one row high


@pytest.mark.parametrize("lang, heading, unseen", [("ko", "토큰화", "런던"), ("en", "Tokenization", "London")])
def test_tokenization_page_in_both_languages(lang, heading, unseen):
    at = _open("pages/tokens.py", lang=lang)
    assert at.title[0].value == heading
    book = [c.value for c in at.code if c.value.startswith("input_text = ")]  # the course book's first tokenizer
    assert len(book) == 1 and book[0].endswith("# [0, 1, 2, 3, 4]" if lang == "ko" else "# [0, 1, 2, 3, 4, 5, 6, 7]")
    assert any(c.value.startswith("input_ids = [") and "'?'" in c.value for c in at.code)
    assert any(unseen in w.value and "KeyError" in w.value for w in at.warning)
    names = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len([n for n in names if "Kiwi" in n or "cl100k" in n or "WordPiece" in n]) == 3
    assert len(at.get("plotly_chart")) == 2  # the merge curve and the Korean / English cost
    assert at.query_params["tks"] == ",".join(("whitespace", "characters", "wordpiece", "byte_bpe", "sentencepiece",
                                               "cl100k", "morphemes"))  # seven side by side, Gemma's among them


def test_tokenization_page_switches_tokenizers_and_walks_the_merges():
    at = _open("pages/tokens.py", lang="en", ttext="언어 모델은 토큰을 본다. Models read tokens.")
    at.multiselect(key="tks").set_value(["byte_bpe", "morphemes"]).run()
    _no_exception(at)
    assert at.query_params["tks"] == "byte_bpe,morphemes"
    assert not any("WordPiece" in m.value for m in at.markdown if m.value.startswith("**W"))
    at.toggle(key="special").set_value(True).run()
    _no_exception(at)
    at.slider(key="bstep").set_value(0).run()
    assert any("every token is one byte" in c.value for c in at.caption)
    at.slider(key="bstep").set_value(250).run()
    _no_exception(at)
    assert any(m.value.startswith("Merge #250") for m in at.markdown) and at.query_params["bstep"] == "250"
    at.number_input(key="merges").set_value(50).run()  # fewer merges than the step: the step follows
    _no_exception(at)
    assert at.slider(key="bstep").value == 50


def test_tokenization_page_with_empty_long_and_odd_text():
    at = _open("pages/tokens.py", lang="ko")
    at.text_area(key="ttext").set_value("  ").run()
    _no_exception(at)
    assert any("분석할 글을" in w.value for w in at.warning)
    odd = "👨‍👩‍👧 e\u0301 zero\u200bwidth \x07 한국어 " * 1500  # over the 20,000-character cap
    at.text_area(key="ttext").set_value(odd).run()
    _no_exception(at)
    assert any("20,000" in w.value for w in at.warning)
    assert at.text_area(key="ttext").value == odd  # nothing the user typed is lost
    for text in (odd, ""):
        at.text_input(key="wtext").set_value(text).run()
        _no_exception(at)
        assert at.text_input(key="wtext").value == text


def test_tokenization_page_trains_on_a_pasted_corpus():
    at = _open("pages/tokens.py", lang="en")
    at.radio(key="bpe_source").set_value("paste").run()
    at.text_area(key="bpe_pasted").set_value("low lower lowest newer newest wider " * 50).run()
    _no_exception(at)
    assert any("Learned" in c.value and "1,800-byte" in c.value for c in at.caption)


@pytest.mark.parametrize("model", ["smollm2-135m", "minilm-l6"])
@pytest.mark.parametrize("lang", ["ko", "en"])
def test_embeddings_page_with_both_models(model, lang):
    at = _open("pages/embeddings.py", lang=lang, model=model, find="queen,한")
    assert len(at.get("plotly_chart")) >= 7  # vectors, positions, map, context paths, senses, sentences
    tables = [d.value for d in at.dataframe]
    assert any("queen" in " ".join(map(str, table.iloc[:, 0])) for table in tables)  # the analogy king − man + woman
    at.radio(key="vdims").set_value(3).run()
    _no_exception(at)
    at.text_input(key="word").set_value("river").run()
    _no_exception(at)
    assert at.query_params["word"] == "river" and at.query_params["vdims"] == "3"


def test_embeddings_page_with_empty_and_odd_input():
    at = _open("pages/embeddings.py", lang="en", model="minilm-l6")
    at.text_area(key="etext").set_value("").run()
    _no_exception(at)
    at.text_area(key="etext").set_value("👨‍👩‍👧 e\u0301 zero\u200bwidth 한국어 " * 40).run()
    _no_exception(at)
    at.text_input(key="analogy_a").set_value("왕").run()
    _no_exception(at)
    assert any("split into several tokens" in w.value for w in at.warning)
    at.text_input(key="word_list").set_value("cat, dog, 고양이, Paris").run()
    at.radio(key="smethod").set_value("tsne").run()
    _no_exception(at)
    assert len(at.get("plotly_chart")) >= 8  # the subset map is among them
    at.text_area(key="sentences").set_value("only one sentence").run()
    _no_exception(at)
    assert any("at least two" in i.value for i in at.info)


@pytest.mark.parametrize("lang, heading", [("ko", "RNN 대 트랜스포머"), ("en", "RNN vs Transformer")])
def test_recurrent_page_in_both_languages(lang, heading):
    at = _open("pages/recurrent.py", lang=lang, rtext="안녕하세요, 트랜스포머! Hello, RNN.")
    assert at.title[0].value == heading
    assert len(at.get("plotly_chart")) >= 7  # states, attention, memory, forward, latency, recall, saliency
    at.slider(key="gap").set_value(150).run()
    _no_exception(at)
    assert at.query_params["gap"] == "150"


def test_recurrent_page_trains_both_models_live_and_handles_empty_text():
    at = _open("pages/recurrent.py", lang="en")
    at.slider(key="steps").set_value(10).run()
    at.button(key="train_start").click().run()
    _no_exception(at)
    assert any("Trained for 10 steps" in s.value for s in at.success)
    at.text_area(key="rtext").set_value("").run()
    _no_exception(at)
    assert any("Type some text" in w.value for w in at.warning)
    odd = "zero\u200bwidth \x07bell 🙂👩‍💻 한국어 " * 200  # 8,000+ bytes of odd text
    at.text_area(key="rtext").set_value(odd).run()
    _no_exception(at)
    assert any("first 512 bytes" in i.value for i in at.info) and at.text_area(key="rtext").value == odd


# ---------------------------------------------------------------- adapting pages

def _finish_job(at: AppTest, kind: str, seconds: float = 240) -> None:
    """Wait on the queued job itself, then rerun once as the page's poll would: the page draws what it left."""
    key = f"job_{kind}"
    if key in at.session_state:  # else it ended before the click's run drew its panel
        assert at.session_state[key].wait(seconds), f"the {kind} job did not end"
    at.run()
    _no_exception(at)


def _train(at: AppTest, button: str, result: str, seconds: float = 240) -> AppTest:
    """Click a training's start button and wait for it; its result is kept."""
    at.button(key=button).click().run()
    _finish_job(at, button.removeprefix("start_"), seconds)
    assert result in at.session_state
    at.run()
    _no_exception(at)
    return at


@pytest.mark.parametrize("lang, title", [("ko", "레이블 수에 따른 정확도"), ("en", "Accuracy against the number of labelled examples")])
def test_transfer_page_draws_the_learning_curves_and_fine_tunes_the_encoder(lang, title):
    at = _open_link("pages/transfer.py", lang=lang, ftn="2", ftep="1")
    curves = _charts(at)[title]
    assert len(curves["data"]) == 6 and curves["layout"]["yaxis"]["tickformat"] == ".0%"  # 3 features x 2 languages
    _train(at, "start_encoder", "encoder_result")
    titles = set(_charts(at))
    assert {"미세조정 전 문장 지도", "미세조정 후 문장 지도"} <= titles if lang == "ko" else \
        {"Sentence map before fine-tuning", "Sentence map after fine-tuning"} <= titles
    assert len(at.metric) == 2 and at.session_state["encoder_result"].epochs == 1
    teacher = _charts(at)["교사의 확률 분포: T = 1과 부드럽게 만든 것 (로그 눈금)" if lang == "ko" else
                          "The teacher's distribution: at T = 1 and softened (log scale)"]
    cold, warm = (bars["y"] for bars in teacher["data"])
    assert max(warm) < max(cold) and min(warm) > min(cold) and sum(cold) == pytest.approx(1)  # T = 4 flattens it
    if lang == "ko":  # the students are trained once: the curves, the sizes
        _train(at, "start_distill", "distill_result")
        assert len(_charts(at)["학생의 정확도: 정답 레이블과 교사의 분포"]["data"]) == 3
        sizes = at.dataframe[-1].value
        assert sizes.iloc[1, 1] == "65,620" and sizes.iloc[0, 0] == "교사 · gemma3-270m"
        curves = at.session_state["distill_result"][1]
        assert len(curves.hard) == len(curves.soft) == len(curves.per_class) == 6
        assert curves.hard[-1] > curves.hard[0] and curves.soft[-1] > curves.soft[0] and min(curves.soft[-3:]) > 0.4
        assert curves.teacher.seconds_per_sentence > 10 * curves.student_seconds_per_sentence


def test_distillation_holds_absurd_settings_in_a_link():
    at = _open_link("pages/transfer.py", lang="en", kdtemp="1000", kdsent="-5", kdlang="xx")
    assert at.select_slider(key="kdtemp").value == 4 and at.selectbox(key="kdsent").value == 0
    assert at.radio(key="kdlang").value == "en"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_finetune_page_trains_lora_and_compares_before_and_after(lang):
    at = _open_link("pages/finetune.py", lang=lang, lsteps="4", lrank="4")
    assert at.session_state["lora_examples"].startswith("The mascot")
    _train(at, "start_lora", "lora_adapter")
    adapter = at.session_state["lora_adapter"]
    assert len(adapter.losses) == 4 and adapter.config.r == 4
    assert at.metric[0].value == f"{adapter.trainable:,}"
    table = at.dataframe[0].value
    assert len(table) == 3 and table.iloc[1, 1].strip().startswith("Paris")  # the control prompt, before
    bars = next(spec for title, spec in _charts(at).items() if title.startswith(("「The mascot", "Next-token probabilities")))
    before, after = bars["data"]  # the same tokens' probabilities before and after the adapter
    assert len(before["y"]) == len(after["y"]) > 0 and before["y"] != after["y"]
    assert all(0 <= y <= 1 for y in [*before["y"], *after["y"]])


def test_finetune_page_refuses_bad_examples_and_keeps_them():
    at = _open("pages/finetune.py", lang="en")
    for text, message in (("", "Write the training examples"), ("x" * 20_000, "too long")):
        _refused_and_kept(at, "lora_examples", text, message)
        assert at.button(key="start_lora").disabled
        assert at.text_area(key="lora_examples").value == text  # nothing typed is lost


def test_finetune_page_survives_absurd_settings_in_a_link():
    at = _open_link("pages/finetune.py", lang="en", lsteps="10000", lrank="0", llr="7", part="bogus", lseed="-5")
    assert at.number_input(key="lsteps").value == 200 and at.select_slider(key="lrank").value == 8
    assert at.session_state["part"] == "lora" and at.number_input(key="lseed").value == 0
    assert any("Too much training" in e.value for e in at.error) and at.button(key="start_lora").disabled  # 200 steps


def test_the_qlora_part_trains_both_and_shows_the_memory_table_in_korean():
    at = _open_link("pages/finetune.py", lang="ko", part="qlora", qsteps="2")
    _train(at, "start_qlora", "qlora_result")
    result = at.session_state["qlora_result"][1]
    assert len(result.lora_losses) == len(result.qlora_losses) == 2
    memory, scale = (d.value for d in at.dataframe)
    assert list(memory.columns) == ["전체 미세조정 (계산)", "LoRA (측정)", "QLoRA (측정)"]
    assert memory.loc["합계", "QLoRA (측정)"] < memory.loc["합계", "LoRA (측정)"] < memory.loc["합계", "전체 미세조정 (계산)"]
    assert len(scale) == 4 and scale.iloc[3, 4] == "36.1 GB"  # 70B in NF4, as the QLoRA paper counts it
    assert len(_charts(at)["학습 단계별 손실"]["data"]) == 2


def test_the_qlora_part_holds_absurd_links_and_refuses_bad_examples_in_english():
    at = _open_link("pages/finetune.py", lang="en", part="qlora", qsteps="10000", qscheme="fp3")
    assert at.number_input(key="qsteps").value == 30 and at.radio(key="qscheme").value == "int4_group"
    for text, message in (("", "Write the training examples"), ("한국어 " * 4_000, "too long")):
        _refused_and_kept(at, "qlora_examples", text, message)
        assert at.button(key="start_qlora").disabled


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_chat_template_part_shows_the_special_tokens_and_both_answers(lang):
    at = _open_link("pages/finetune.py", lang=lang, part="chat")
    html = " ".join(element.proto.body for element in at.get("html"))
    assert "&lt;|im_start|&gt;" in html and "Paris" in html


@pytest.mark.parametrize("lang, model", [("ko", "gemma3-270m"), ("en", "smollm2-135m")])
def test_the_api_part_shows_the_request_the_response_and_what_it_costs(lang, model):
    """On a base model the chat model answers (said so); a temperature of 1,000 in the link is held at 2, a price
    that is not a number is refused and kept; the usage is the tokenizer's count."""
    at = _open_link("pages/finetune.py", lang=lang, model=model, part="api", apitemp="1000", apimax="8", apiin="abc")
    assert at.slider(key="apitemp").value == 2.0
    assert (model == "gemma3-270m") == any("smollm2-135m" in i.value for i in at.info)
    response = json.loads(next(c.value for c in at.code if '"chat.completion"' in c.value))
    request = json.loads(next(c.value for c in at.code if '"messages"' in c.value))
    from explorer import api, models

    chat = models.load(models.SMOLLM2)
    assert response["usage"]["prompt_tokens"] == len(api.prompt_ids(chat.tokenizer, request["messages"]))
    assert request["temperature"] == 2.0 and response["usage"]["completion_tokens"] <= 8
    assert any("abc" in w.value for w in at.warning) and at.text_input(key="apiin").value == "abc"
    at.text_input(key="apiin").set_value("$0.15").run()
    _no_exception(at)
    costs = at.dataframe[-1].value
    assert len(costs) == 2 and costs.iloc[:, 2].max() > costs.iloc[:, 2].min()  # Korean takes more input tokens
    at.text_area(key="apiq").set_value("").run()
    _no_exception(at)
    assert at.error and at.text_area(key="apiq").value == ""


def test_preference_part_measures_margins_before_training():
    """The margins the chat model gives the pirate pairs, before any training (DPO's training is tested in the stages
    test below and on SmolLM2 in test_adapting)."""
    at = _open_link("pages/finetune.py", lang="en", part="dpo", dsteps="2")
    title = "Margin per pair: log P(chosen) − log P(rejected)"
    before = _charts(at)[title]
    assert len(before["data"]) == 1 and all(value < 0 for value in before["data"][0]["y"])
    assert any("Nothing has been SFT'd yet" in c.value for c in at.caption) and at.session_state["dpreset"] == "pirate"
    assert not at.button(key="start_dpo").disabled


def test_the_base_model_goes_through_sft_then_dpo_and_the_three_stages_answer_side_by_side():
    """Korean, on Gemma's base model: one SFT step, then DPO starts from the SFT model (so it says), and the held-out
    instructions are answered by the base model, the SFT model and the DPO model in one table."""
    import pandas as pd

    from explorer import alignment

    at = _open_link("pages/finetune.py", lang="ko", model="gemma3-270m", part="sft", ssteps="1")
    assert list(at.dataframe[-1].value.columns) == ["지시문", "기본 모델의 답"]
    at.session_state["sft_pairs"] = pd.DataFrame([row.__dict__ for row in alignment.bundled()["sft"][:4]])  # 4 of 16
    at.run()
    _train(at, "start_sft", "sft_adapter")
    assert list(at.dataframe[-1].value.columns) == ["지시문", "기본 모델의 답", "SFT 뒤의 답"]
    at.session_state["part"], at.session_state["dsteps"], at.session_state["dpreset"] = "dpo", 1, "brief"  # 4 pairs
    at.run()
    _no_exception(at)
    assert any("SFT한 모델에서 시작" in c.value for c in at.caption)
    _train(at, "start_dpo", "dpo_result")
    stages = at.dataframe[-1].value
    assert list(stages.columns) == ["프롬프트", "원래 모델", "SFT 뒤", "DPO 뒤"] and len(stages) == 2
    assert stages["프롬프트"][0] == "What is the largest ocean?"
    assert at.session_state["dpo_result"][3] is at.session_state["sft_adapter"]  # DPO started from this SFT


def test_a_training_can_be_cancelled_and_the_inputs_stay():
    at = _open_link("pages/finetune.py", lang="en", lsteps="90")
    at.button(key="start_lora").click().run()
    job = at.session_state["job_lora"]
    from explorer import memory

    def leases() -> int:
        return next(r.leases for r in memory.BUDGET.residents() if r.key == ("model", "smollm2-135m"))

    assert leases() == 1  # the page's run has ended; the queued training still holds its model against drops
    at.button(key="cancel_lora").click().run()
    assert job.wait(60) and job.status == "cancelled"
    assert leases() == 0
    at.run()
    _no_exception(at)
    assert any("cancelled" in info.value for info in at.info)
    assert "lora_adapter" not in at.session_state and at.session_state["lora_examples"].startswith("The mascot")


# ---------------------------------------------------------------- RAG

OWN_DOCUMENTS = ("The Moonrise Bakery opens at 6:15 every morning and closes when the bread runs out.\n\n"
                 "달빛 빵집의 대표 빵은 쑥 식빵이며, 한 개에 4,800원이다.\n\n"
                 "<b>Notice</b>: the bakery's cat is called Miso. **Do not** feed her.")


@pytest.mark.parametrize("lang, question, expected", [
    ("en", "When does the Moonrise Bakery open?", "6:15"),
    ("ko", "달빛 빵집의 대표 빵은 무엇인가요?", None),  # SmolLM2 cannot write Korean: retrieval is what is checked
])
def test_rag_page_answers_from_the_learners_own_documents(lang, question, expected):
    at = _open_link("pages/rag.py", lang=lang)
    assert at.session_state["rag_documents"].startswith("The ferry")
    at.text_area(key="rag_documents").set_value(OWN_DOCUMENTS).run()
    at.text_input(key="q").set_value(question).run()
    _no_exception(at)
    assert at.session_state["rag_question"] == question
    fused = at.dataframe[3].value  # chunks, then the BM25, MiniLM and fused rankings
    assert ("Moonrise" if lang == "en" else "달빛") in fused.iloc[0, 1]
    assert at.metric[0].value.endswith("/ 1,024")
    if expected:
        html = " ".join(element.proto.body for element in at.get("html"))
        assert expected in html or any(expected in m.value for m in at.markdown)
    else:
        assert any("smollm2-135m" in info.value and "gemma3-270m" in info.value for info in at.info)  # said plainly,
        # offering the model that writes Korean
    shares = _charts(at)["답 토큰의 어텐션 중 각 청크로 간 몫" if lang == "ko" else "Share of the answer tokens' attention on each chunk"]
    values = [y for trace in shares["data"] for y in trace["y"]]  # one bar per retrieved chunk
    assert values and all(0 <= y <= 1 for y in values) and sum(values) <= 1 + 1e-6  # shares of one attention mass


def test_rag_page_refuses_empty_and_huge_documents_and_keeps_them():
    at = _open_link("pages/rag.py", lang="en")
    for text, message in (("", "There are no documents"), ("x " * 150_000, "too long")):
        _refused_and_kept(at, "rag_documents", text, message)


def test_rag_page_with_a_question_nothing_matches_and_absurd_link_values():
    at = _open_link("pages/rag.py", lang="en", k="99", csize="5", coverlap="9999", method="magic", q="zzqx plorf")
    assert at.select_slider(key="k").value == 1 and at.slider(key="csize").value == 100
    assert at.session_state["method"] == "fused"
    at.radio(key="method").set_value("bm25").run()
    _no_exception(at)
    assert any("No chunk shares a word" in w.value for w in at.warning)


def test_rag_accuracy_is_measured_through_the_queue_and_drawn(monkeypatch):
    from pages.views import rag as view

    monkeypatch.setattr(view, "QUESTIONS", view.QUESTIONS[:1] + view.QUESTIONS[-1:])  # one per language: short
    monkeypatch.setattr(view, "EVALUATIONS", Kept(8))  # this process's measurement stays out of other tests
    at = _open_link("pages/rag.py", lang="en")
    at.button(key="start_rag_eval").click().run()
    _finish_job(at, "rag_eval")
    english = _charts(at)["Accuracy on the English questions"]
    assert [trace["y"][0] for trace in english["data"]] == [1.0, 1.0, 1.0]  # k = 1, every method: the ferry's 7:40


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_quantize_page_measures_every_scheme_and_says_who_built_it(lang):
    at = _open_link("pages/quantize.py", lang=lang)
    memory = at.dataframe[1].value  # the GGUF file's own types, then the memory per scheme
    assert len(memory) == 6 and memory.iloc[:, 1].str.contains("torchao").sum() == 3  # int8 twice, int4
    assert any("Q4_1" in w.value for w in at.warning)  # the caveat on the "fp32" baseline
    behaviour = at.dataframe[3].value  # then the history arithmetic, then the next-token table
    assert behaviour.iloc[0, 1] == 0.0 and behaviour.iloc[0, 2] == 1.0  # fp32 against itself: KL 0, top-1 agreement 1
    histogram = next(spec for title, spec in _charts(at).items() if "가중치 분포와 격자" in title or "and the grid" in title)
    grid = np.frombuffer(base64.b64decode(histogram["data"][1]["x"]["bdata"]), dtype="f8")  # levels as x, x, gap
    assert len(grid) == 3 * 16 and len(np.unique(grid[~np.isnan(grid)])) == 16  # the int4 group the page runs
    assert len(at.get("plotly_chart")) == 4  # histogram, outlier channels, error heatmap, speed


def test_quantize_page_with_absurd_link_values_and_an_empty_text_keeps_the_text():
    at = _open_link("pages/quantize.py", lang="en", group="7", sym="maybe", matrix="99.nothing", grid="int2", qtext="")
    assert at.session_state["group"] == 32 and at.session_state["grid"] == "int4_group"
    assert at.session_state["matrix"] == "0.self_attn.q_proj"
    assert at.error  # the empty text: a message, no table
    at.text_area(key="qtext").set_value("<b>안녕</b> 👋\u200b").run()
    _no_exception(at)
    assert at.text_area(key="qtext").value == "<b>안녕</b> 👋\u200b"


def test_quantize_page_on_minilm_compares_sentence_vectors():
    at = _open_link("pages/quantize.py", lang="ko", model="minilm-l6", group="64", sym="0")
    assert any("진짜 fp32" in c.value or "fp32이므로" in c.value for c in at.caption)
    cosine = at.dataframe[2].value.iloc[:, 1]  # memory, arithmetic, then the cosine per scheme
    assert cosine.iloc[0] == pytest.approx(1.0) and (cosine > 0.9).all()


def _finish_sweep(at: AppTest, kind: str, seconds: float = 240) -> None:
    """Start a lab sweep and rerun until its figures are drawn (it runs through the queue)."""
    at.button(key=f"start_{kind}").click().run()
    _finish_job(at, kind, seconds)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_lab_attribution_adds_up_and_names_the_target(lang):
    at = _open_link("pages/lab.py", lang=lang)
    metrics = {m.label: m.value for m in at.metric}
    assert "Paris" in next(iter(metrics.values()))
    logit, total = (float(v) for v in list(metrics.values())[2:4])
    assert logit == pytest.approx(total, abs=2e-3)  # the check the page shows
    assert len(at.get("plotly_chart")) == 2  # layers, heads of the chosen layer
    at.text_input(key="ltarget").set_value("antidisestablishment").run()
    _no_exception(at)
    assert at.error and at.text_input(key="ltarget").value == "antidisestablishment"


def test_lab_ablation_and_the_head_sweep_through_the_queue():
    at = _open_link("pages/lab.py", lang="en", tool="ablate", apart="head", alayer="23", ahead="4", amode="zero")
    assert at.metric[0].label.startswith("Probability of ' Paris'")
    prompt = at.text_input(key="lprompt").value
    at.button(key="start_lab_heads").click().run()
    at.text_input(key="lprompt").set_value("The capital of Italy is").run()  # edited while the sweep runs
    _finish_job(at, "lab_heads")
    titles = set(_charts(at))
    assert not any(" with one head" in t for t in titles)  # the sweep belongs to the prompt it started with
    assert at.button(key="start_lab_heads")  # this prompt has its own sweep to run
    at.text_input(key="lprompt").set_value(prompt).run()
    _no_exception(at)
    titles = set(_charts(at))
    heads = next(spec for title, spec in _charts(at).items() if title.startswith("Probability of ' Paris' with one head"))
    assert heads["data"][0]["z"]["shape"] == "30, 9"  # layers x heads, kept for the prompt it ran on
    assert any(t.startswith("Probability of ' Paris' with one layer") for t in titles)


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_lab_patching_maps_and_refuses_prompts_of_different_lengths(lang):
    at = _open_link("pages/lab.py", lang=lang, tool="patch")
    _finish_sweep(at, "lab_patch")
    assert any(("패칭" in t or "patching" in t) for t in _charts(at))
    at.text_input(key="corrupt").set_value("The capital of the United Kingdom of Great Britain is").run()
    _no_exception(at)
    assert at.error and at.text_input(key="corrupt").value.startswith("The capital of the United")


def test_lab_steering_changes_the_continuation_and_strength_zero_matches_plain():
    at = _open_link("pages/lab.py", lang="ko", tool="steer", strength="0")
    plain, steered = (" ".join(h.proto.body for h in at.get("html")[i:i + 1]) for i in (0, 1))
    assert plain == steered
    at.slider(key="strength").set_value(8.0).run()
    _no_exception(at)
    assert at.get("html")[0].proto.body != at.get("html")[1].proto.body
    at.text_area(key="sneg").set_value("  ").run()
    assert at.error and at.text_area(key="sneg").value == "  "


def test_lab_break_it_table_and_absurd_link_values():
    at = _open_link("pages/lab.py", lang="en", tool="ablate", alayer="999", ahead="-3", amode="magic", apart="x")
    assert (at.session_state["alayer"], at.session_state["ahead"], at.session_state["amode"]) == (29, 0, "zero")
    at = _open_link("pages/lab.py", lang="en", tool="steer", strength="1e9", slayer="-1")
    assert at.session_state["strength"] == 12.0 and at.session_state["slayer"] == 0
    at = _open_link("pages/lab.py", lang="en", tool="break")
    _finish_sweep(at, "lab_layers", 300)
    assert at.dataframe[0].value.iloc[0, 0] == 0  # removing the first layer hurts most


def _lesson_ids() -> list[str]:
    from explorer import lessons

    return [lesson.id for lesson in lessons.load_all()[0]]


@pytest.mark.parametrize("lang", ["ko", "en"])
@pytest.mark.parametrize("lesson", _lesson_ids())
def test_every_step_of_every_lesson_runs(lesson, lang):
    at = _open_link("pages/lessons.py", lang=lang, lesson=lesson, step="1")
    step = 1
    while True:
        _no_exception(at)
        assert at.query_params["lesson"] == lesson and at.query_params["step"] == str(step)
        assert at.header[0].value  # the step's title
        if lesson == "gpt3-to-chatgpt":  # SFT, the template, the reward model, DPO, prompting: each drawn live
            assert at.get("dataframe") or at.get("plotly_chart") or at.get("html"), step
        if at.button(key="lesson_next").disabled:
            break
        at.button(key="lesson_next").click().run()
        step += 1
    assert step >= 6


def test_a_rag_lesson_step_shows_its_stages_and_keeps_the_earlier_ones_in_a_tab():
    at = _open_link("pages/lessons.py", lang="en", lesson="rag", step="2")  # the chunks: nothing after them is run
    _no_exception(at)
    assert not at.tabs and at.text_area(key="rag_documents").value
    assert [w.key for w in at.main.text_input] == ["class_join", "class_nick"]  # the class panel's, not the question's
    at = _open_link("pages/lessons.py", lang="ko", lesson="rag", step="5")  # what the answer drew on
    _no_exception(at)
    now, earlier = at.tabs
    assert (now.label, earlier.label) == ("이번 단계", "앞 단계 (여기까지 온 과정)")
    assert [h.value for h in now.subheader] == ["4. 답", "5. 답은 어느 청크에 기댔나"]
    assert [h.value for h in earlier.subheader][:2] == ["1. 문서와 청크", "2. 찾기: 두 가지 방법과 그 결합"]
    assert earlier.text_input[0].value == "How tall is the lighthouse on Gull Point?"  # the step's question, still asked


def test_a_question_is_answered_live_after_the_guess():
    at = _open_link("pages/lessons.py", lang="en", lesson="next-token", step="1")
    at.text_input(key="guess_next-token_1").set_value("Paris").run()
    at.button(key="reveal_next-token_1").click().run()
    _no_exception(at)
    assert any("␣Paris" in m.value for m in at.markdown)  # the model's greedy top-1, computed now
    assert at.success and "Right" in at.success[0].value
    at = _open_link("pages/lessons.py", lang="ko", lesson="attention", step="3")
    at.radio(key="guess_attention_3").set_value("0").run()
    at.button(key="reveal_attention_3").click().run()
    _no_exception(at)
    assert any("모델에서 지금 계산한 답" in m.value for m in at.markdown)


def test_a_lesson_written_by_a_user_appears_and_a_broken_one_is_named():
    from explorer import lessons
    from pages.views import lessons as view

    mine, broken = lessons.LESSONS / "zz-test-mine.toml", lessons.LESSONS / "zz-test-broken.toml"
    mine.write_text('title = { ko = "내 강의", en = "My lesson" }\norder = 99\n\n[[steps]]\nview = "history.sizes"\n'
                    'title = { ko = "크기", en = "Sizes" }\nnarrative = { ko = "설명", en = "Text" }\n', encoding="utf-8")
    broken.write_text('title = { ko = "b", en = "b" }\n\n[[steps]]\nview = "history.sizes"\ntitle = { ko = "t" }\n'
                      'narrative = { ko = "n", en = "n" }\n', encoding="utf-8")
    try:
        view.course.clear()
        at = _open_link("pages/lessons.py", lang="en", lesson="zz-test-mine")
        assert at.header[0].value == "Sizes" and at.selectbox(key="lesson").value == "zz-test-mine"
        assert any("zz-test-broken.toml, line 5, step 1: title.en" in e.value for e in at.error)
    finally:
        mine.unlink()
        broken.unlink()
        view.course.clear()


def test_absurd_lesson_links_fall_back():
    at = _open_link("pages/lessons.py", lang="en", lesson="nowhere", step="999")
    assert at.query_params["lesson"] == "tokenization" and at.query_params["step"] == "8"
    at = _open_link("pages/lessons.py", lang="en", lesson="attention", step="-3")
    assert at.query_params["step"] == "1"
