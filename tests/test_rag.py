"""RAG on the real bundled models: chunking, BM25 over Kiwi morphemes against MiniLM vectors, RRF, the prompt, the
answer, attribution, and accuracy on the built-in questions."""

import numpy as np
import pytest

from explorer import rag


@pytest.fixture(scope="module")
def index(minilm):
    return rag.build_index(minilm, rag.chunk(rag.paragraphs(rag.bundled_text())))


def _question(text: str) -> dict:
    return next(q for q in rag.bundled_questions() if q["question"] == text)


def test_paragraphs_and_chunks_cover_the_text():
    documents = rag.paragraphs("첫 문단입니다.\n\n\n  Second paragraph.  \n \nThird.")
    assert documents == ["첫 문단입니다.", "Second paragraph.", "Third."]
    long = " ".join(f"word{i}" for i in range(3000))  # ~26,000 characters, one paragraph
    chunks = rag.chunk([long], size=400, overlap=50)
    assert all(len(c.text) <= 400 for c in chunks) and len(chunks) > 60
    assert chunks[0].text.startswith("word0 ") and chunks[-1].text.endswith("word2999")
    for first, second in zip(chunks, chunks[1:]):
        assert second.start < first.end <= second.start + 60  # overlapping by about 50 characters
        assert not second.text.startswith(("ord", "rd"))  # each starts at a word


@pytest.mark.parametrize("text, kind", [("", "no_documents"), ("\n\n  \n", "no_documents"),
                                        ("가" * 200_001, "documents_too_long")])
def test_bad_documents_are_refused(text, kind):
    with pytest.raises(rag.RagError) as refused:
        rag.paragraphs(text)
    assert refused.value.kind == kind


def test_a_huge_paragraph_and_html_are_chunked_as_plain_text(minilm):
    huge = ("<b>새별섬</b> <script>alert(1)</script> 둘레길은 18킬로미터이다. " * 2500)[:100_000]
    chunks = rag.chunk(rag.paragraphs(huge))
    assert 200 < len(chunks) < rag.MAX_CHUNKS and "<script>" in chunks[0].text  # kept as typed, never interpreted
    found = rag.retrieve(rag.build_index(minilm, chunks[:50]), minilm, "둘레길 길이")
    assert found.top("bm25", 1)


def test_morphemes_drop_particles_and_endings():
    assert rag.morphemes("새별초등학교에는 학생이 27명 있다.") == ["새별초등학교", "학생", "27", "명", "있"]
    assert rag.morphemes("How tall is the lighthouse?") == ["how", "tall", "lighthouse"]  # bm25s English stopwords gone


def test_bm25_finds_the_korean_passage_where_dense_minilm_does_not(index, minilm):
    question = _question("새별천문대 망원경의 지름은 얼마인가요?")
    found = rag.retrieve(index, minilm, question["question"])
    gold = question["document"]
    assert found.top("bm25", 1) == [gold]
    assert gold not in found.top("dense", 3)  # MiniLM reads Hangul as jamo pieces: the meaning is lost
    assert found.top("fused", 1) == [gold]


def test_english_questions_find_their_passage_every_way(index, minilm):
    for question in rag.bundled_questions("en"):
        found = rag.retrieve(index, minilm, question["question"])
        for method in rag.METHODS:
            assert found.top(method, 1) == [question["document"]], (question["question"], method)


def test_fusion_equals_reciprocal_rank_fusion_by_hand():
    bm25 = np.array([3.0, 0.0, 1.0, 2.0])
    dense = np.array([0.1, 0.9, 0.5, 0.2])
    fused = rag.reciprocal_rank_fusion(rag.ranks(bm25), rag.ranks(dense))
    # ranks: bm25 -> [1, 4, 3, 2], dense -> [4, 1, 2, 3]
    by_hand = [1 / 61 + 1 / 64, 1 / 64 + 1 / 61, 1 / 63 + 1 / 62, 1 / 62 + 1 / 63]
    np.testing.assert_allclose(fused, by_hand)


def test_a_question_with_no_match_retrieves_nothing_by_bm25(index, minilm):
    found = rag.retrieve(index, minilm, "zzqx plorf")
    assert found.top("bm25", 3) == [] and found.matched == []
    assert len(found.top("dense", 3)) == 3  # dense retrieval always returns its nearest
    with pytest.raises(rag.RagError):
        rag.retrieve(index, minilm, "   ")


def test_the_prompt_is_the_chat_template_and_marks_each_passage(smollm):
    passages = ["The red lighthouse on Gull Point is 31 metres tall.", "새별천문대는 2019년에 문을 열었다."]
    prompt = rag.build_prompt(smollm, "How tall is the lighthouse?", passages)
    content = rag.prompt_content("How tall is the lighthouse?", passages)
    expected = smollm.tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                    tokenize=True)["input_ids"]
    assert prompt.ids == list(expected) == [t.id for t in prompt.tokens.tokens]
    for passage, (start, end) in zip(passages, prompt.passage_spans):
        assert smollm.tokenizer.decode(prompt.ids[start:end]).strip() == passage


def test_with_one_passage_the_built_in_english_questions_are_answered(smollm, minilm, index):
    questions = rag.bundled_questions("en")[:4]
    rows = rag.evaluate(smollm, minilm, index, questions, ks=(1,), methods=("fused",))
    accuracy = np.mean([row["correct"] for row in rows])
    assert accuracy >= 0.75, rows  # measured: 8 of 8 with the one relevant chunk


def test_the_answer_needs_the_passage_it_used(smollm, minilm, index):
    question = _question("How tall is the lighthouse on Gull Point?")
    found = rag.retrieve(index, minilm, question["question"])
    passages = [index.chunks[i].text for i in found.top("fused", 3)]
    prompt = rag.build_prompt(smollm, question["question"], passages)
    answer = list(rag.stream_answer(smollm, prompt))
    assert "31" in rag.answer_text(smollm, answer)
    attribution = rag.attribute(smollm, question["question"], passages, answer)
    gold = passages.index(next(c.text for c in index.chunks if c.document == question["document"]))
    assert attribution.drop[gold] > 1.0 and attribution.drop[gold] == attribution.drop.max()
    assert attribution.attention.shape == (3,) and (attribution.attention > 0).all()
    assert [len(t) for t in attribution.token_attention] == [end - start for start, end in prompt.passage_spans]


def test_without_passages_the_model_makes_something_up(smollm):
    prompt = rag.build_prompt(smollm, "How tall is the lighthouse on Gull Point?", [])
    assert "31" not in rag.answer_text(smollm, list(rag.stream_answer(smollm, prompt)))


def test_accuracy_table_groups_by_language_method_and_k():
    rows = [dict(language="en", method="bm25", k=1, correct=True), dict(language="en", method="bm25", k=1, correct=False),
            dict(language="ko", method="dense", k=3, correct=False)]
    table = {(r["language"], r["method"], r["k"]): r["accuracy"] for r in rag.accuracy_table(rows)}
    assert table == {("en", "bm25", 1): 0.5, ("ko", "dense", 3): 0.0}
