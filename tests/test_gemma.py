"""Gemma 3 270M, the bundled model that writes Korean, through the engine: sliding-window and full attention captured
exactly, logits and log-probabilities equal to its own forward, greedy Korean as measured."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from explorer import activations, architecture, models, prediction

LONG = ("새별섬의 등대는 바다를 비춘다. The lighthouse on Gull Point lights the sea. " * 40).strip()  # ~700 tokens


@pytest.fixture(scope="module")
def eager(gemma):
    """The same weights, stored as the engine stores them (its table and block matrices in bfloat16 on the CPU), run
    by transformers' eager attention, which returns every softmax."""
    model = AutoModelForCausalLM.from_pretrained(models.converted_folder(models.GEMMA3), attn_implementation="eager",
                                                 dtype=torch.float32).eval()
    parts = architecture.find(model)
    assert models.narrow_large_tables(parts, torch.device("cpu")) == gemma.info.table_dtype
    assert models.narrow_block_matrices(parts, torch.device("cpu")) == gemma.info.block_dtype
    return model


def test_gemma_is_the_bundled_base_model_with_two_kinds_of_layer(gemma):
    info, config = gemma.info, gemma.model.config.get_text_config()
    assert (info.layers, info.query_heads, info.kv_heads, info.hidden_size, info.vocab_size) == (18, 4, 1, 640, 262_144)
    assert config.layer_types.count("full_attention") == 3 and config.sliding_window == 512
    assert gemma.tokenizer.chat_template is None  # a base model: no chat template
    assert not models.needs_conversion(models.GEMMA3)


def test_sliding_and_full_layers_are_captured_exactly_past_the_window(gemma, eager):
    result = activations.run_capture(gemma, LONG, ["blocks.0.attn.pattern", "blocks.5.attn.pattern", "next_logits",
                                                   "token_log_probs"], max_tokens=1024)
    ids = torch.as_tensor(result.token_ids)[None]  # (1, seq)
    seq = ids.shape[1]
    assert seq > 600
    with torch.inference_mode():
        reference = eager(ids, output_attentions=True)
    for layer in (0, 5):  # sliding (window 512), full
        pattern = result[f"blocks.{layer}.attn.pattern"].astype(np.float32)  # (heads, seq, seq)
        np.testing.assert_allclose(pattern, reference.attentions[layer][0].numpy(), atol=2.5e-3, err_msg=f"layer {layer}")
    rows, columns = np.indices((seq, seq))
    beyond = rows - columns >= 512  # keys more than the window behind the query
    assert result["blocks.0.attn.pattern"][:, beyond].max() == 0  # a sliding layer sees only its window
    assert result["blocks.5.attn.pattern"][:, beyond].astype(np.float32).sum() > 0  # the full one sees everything
    logits = reference.logits[0].double()  # (seq, vocab): the model's own
    # the logits leave the bf16 table in bf16's resolution (1/8 at 21): one step apart is the same answer
    np.testing.assert_allclose(result["next_logits"], logits[-1].numpy(), rtol=2 ** -7, atol=0.05)
    expected = torch.log_softmax(logits[:-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    np.testing.assert_allclose(result["token_log_probs"], expected.numpy(), atol=2e-3)


def test_gemma_writes_korean_greedily_as_measured(gemma):
    added, _ = prediction.generate(gemma, "나는 오늘 아침에", 4)
    assert gemma.tokenizer.decode(added).startswith(" 밥을")
    ids = gemma.tokenizer("나는 오늘 아침에", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        reference = gemma.model.generate(ids, max_new_tokens=4, do_sample=False)[0, ids.shape[1]:]
    assert added == reference.tolist()  # transformers' own generate


def test_attribution_adds_up_to_paris_and_both_rotary_bases_are_read(gemma):
    """The issue's measurement: the components summed to -1.03 against a logit of 18.27 before Gemma's post-norms and
    (1 + w) gains were asked of the architecture."""
    from explorer import embeddings, interpret

    ids = interpret.prompt_ids(gemma, "The capital of France is")
    target = interpret.target_id(gemma, ids, "Paris")
    found = interpret.attribute(gemma, ids, target)
    assert gemma.tokenizer.decode([target]) == " Paris"
    assert found.total == pytest.approx(found.logit, rel=1e-3)
    bases = {base.base: base.layers for base in embeddings.rotary_bases(gemma)}
    assert bases == {10_000: [i for i in range(18) if i % 6 != 5], 1_000_000: [5, 11, 17]}


def test_a_base_model_answers_a_korean_rag_question_from_a_completion_prompt(gemma, minilm):
    """No chat template: "문서: …\n질문: …\n답:" as tokens, the answer is the line after it, taken from the passage."""
    from explorer import adapting, rag

    index = rag.build_index(minilm, rag.chunk(rag.paragraphs(rag.bundled_text("ko"))))
    question = "새별섬의 인구는 몇 명인가요?"
    passages = [index.chunks[i].text for i in rag.retrieve(index, minilm, question).top("bm25", 1)]
    prompt = rag.build_prompt(gemma, question, passages)
    assert prompt.completion and prompt.text.startswith("<bos>문서: ") and prompt.text.endswith("\n질문: " + question + "\n답:")
    assert prompt.ids == gemma.tokenizer(prompt.text[len("<bos>"):])["input_ids"]
    start, end = prompt.passage_spans[0]
    assert gemma.tokenizer.decode(prompt.ids[start:end]).strip().startswith(passages[0][:10])
    chances: list[float] = []
    ids = list(rag.stream_answer(gemma, prompt, chances=chances))
    answer = rag.answer_text(gemma, ids)
    assert "1,430" in answer and "\n" not in answer and "질문" not in answer
    assert {1, 106} <= adapting.answer_stop_ids(gemma)  # <eos> and <end_of_turn>
    with torch.inference_mode():  # the confidence is the model's own softmax at each written token, by hand
        logits = gemma.model(torch.tensor([prompt.ids + ids])).logits[0, len(prompt.ids) - 1:-1].float()  # (n, vocab)
    by_hand = torch.softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]  # (n,)
    # The streamed answer decodes with a cache, the reference in one forward: they round differently, and Gemma's table
    #   multiplies in bfloat16 (its input rounded to 8 bits), which can turn that rounding into 5e-4 (seen, 1 thread)
    np.testing.assert_allclose(chances, by_hand.numpy(), atol=2e-3)
    sure = rag.confidence(gemma, ids, chances)
    assert sure == pytest.approx(float(by_hand[[i not in adapting.answer_stop_ids(gemma) for i in ids]].mean()), abs=1e-3)
    bare, bare_chances = rag.build_prompt(gemma, question, []), []
    bare_ids = list(rag.stream_answer(gemma, bare, chances=bare_chances))
    print(f"with the passage {answer!r} at {sure:.0%}; without {rag.answer_text(gemma, bare_ids)!r} at "
          f"{rag.confidence(gemma, bare_ids, bare_chances):.0%}")
    assert rag.confidence(gemma, [], []) is None


def test_gemmas_hidden_states_carry_transfer_learning_into_korean(gemma):
    """MiniLM (English-only pretraining) reaches 45 % on Korean at 16 per topic, below TF-IDF's 65 %; a decoder
    pretrained on Korean does better than both."""
    from explorer import embeddings, transfer

    topics = transfer.load_topics()
    vectors = {"decoder": {language: embeddings.decoder_sentence_vectors(gemma, topics.texts[language])
                           for language in transfer.LANGUAGES}}
    rows = transfer.learning_curves(vectors, topics, repeats=2)
    at = {(r["language"], r["method"], r["per_class"]): r["accuracy"] for r in rows}
    print({key: round(value, 2) for key, value in at.items() if key[2] == 16})
    assert at["ko", "decoder", 16] > at["ko", "tfidf", 16]


# ---------------------------------------------------------------- the pages, in Korean, on the default model

def _korean_app(page: str, **query):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
    at.query_params.update({"lang": "ko", **query})  # no model named: the language's default
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_default_model_follows_the_language():
    assert _korean_app("pages/home.py").session_state["_keep_model"] == models.GEMMA3
    assert _korean_app("pages/home.py", lang="en").session_state["_keep_model"] == models.SMOLLM2


KOREAN_PAGES = [("pages/predict.py", {"ptext": "대한민국의 수도는", "vs": models.SMOLLM2}), ("pages/attention.py", {"layer": "5"}),
                ("pages/embeddings.py", {"vscript": "hangul"}), ("pages/lab.py", {"lprompt": "대한민국의 수도는"}),
                ("pages/rag.py", {"q": "새별섬의 인구는 몇 명인가요?"}), ("pages/inside.py", {}),
                ("pages/finetune.py", {"part": "dpo"}), ("pages/quantize.py", {})]


@pytest.mark.parametrize("page, query", KOREAN_PAGES)
def test_every_model_page_draws_on_gemma_in_korean(page, query):
    at = _korean_app(page, **query)
    assert at.session_state["_keep_model"] == models.GEMMA3
    assert at.get("plotly_chart"), page
    if page == "pages/predict.py":  # both models' bars, side by side: Gemma offers ' 서울', SmolLM2 byte pieces
        side = [chart for chart in at.get("plotly_chart") if '"text":"gemma3-270m"' in chart.proto.spec
                or '"text":"smollm2-135m"' in chart.proto.spec]
        assert len(side) == 2 and "서울" in side[0].proto.spec
    if page == "pages/finetune.py":  # a base model's preference pairs: the bundled helpful ones, Korean among them
        assert at.session_state["dpreset"] == "helpful" and any("아직 SFT하지 않아" in c.value for c in at.caption)
    if page == "pages/rag.py":
        written = [element.proto.body for element in at.get("html")] + [m.value for m in at.markdown]
        assert any("1,430" in text for text in written)  # answered from the passage
        assert at.session_state["method"] == "bm25"  # Korean retrieves with BM25 by default


def test_a_lesson_step_pins_the_model_it_needs():
    """The sidebar holds SmolLM2, but the Korean next-token step runs on Gemma, and its question is answered by Gemma."""
    at = _korean_app("pages/lessons.py", lang="en", model=models.SMOLLM2, lesson="next-token", step="2")
    assert any(models.GEMMA3 in caption.value for caption in at.caption)
    at.text_input(key="guess_next-token_2").set_value("서울").run()
    at.button(key="reveal_next-token_2").click().run()
    from explorer import lessons

    expected = lessons.live_answer("next_token", models.load(models.GEMMA3, device="cpu", dtype="float32"),
                                   {"text": "질문: 대한민국의 수도는?\n답:"})
    assert expected == "␣서울"
    assert any(expected in m.value for m in [*at.markdown, *at.success, *at.info]), expected
    assert at.session_state["_keep_model"] == models.SMOLLM2  # the learner's own choice is left alone


ODD = "👨‍👩‍👧 e\u0301 zero\u200bwidth \x07 <b>한국어</b> 똠방각하 "


@pytest.mark.parametrize("page, key", [("pages/predict.py", "ptext"), ("pages/attention.py", "atext"),
                                       ("pages/embeddings.py", "etext"), ("pages/lab.py", "lprompt"),
                                       ("pages/inside.py", "text"), ("pages/tokens.py", "ttext")])
def test_hard_text_on_gemma_is_shown_or_refused_plainly_and_kept(page, key):
    at = _korean_app(page)
    for text in (ODD * 400, ""):  # odd characters over the length cap, then nothing
        box = next(w for w in [*at.text_area, *at.text_input] if w.key == key)
        box.set_value(text).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state[key] == text  # nothing typed is lost
