"""Korean first: one glossary every Korean string follows, no stray English in the Korean UI, facts with sources."""

import json
import re
from pathlib import Path

import pytest

from explorer import i18n, lessons

ASSETS = Path(__file__).resolve().parent.parent / "assets"
GLOSSARY = i18n.glossary()
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.+\-]*[A-Za-z0-9+]|[A-Za-z]")
LITERAL = re.compile(r"\{[^}]*\}|`[^`]*`|\[[A-Z]+\]|<\|[^|]*\|>|0x[0-9A-F]+|U\+[0-9A-F]+|−?log₂")  # placeholders, code,
# special tokens, bytes, code points, math
SAMPLE_INPUTS = {"attention_sample", "rnn_sample", "sample_text", "predict_sample", "emb_sample", "emb_query_sample",
                 "chat_sample", "lab_prompt_default", "lab_clean_default", "lab_corrupt_default", "lab_positive_default",
                 "lab_negative_default", "lab_steer_prompt_default"}


def korean_strings() -> dict[str, str]:
    """Every Korean text a learner can see: the UI table and the Korean fields of the bundled data."""
    found = {f"i18n:{key}": entry["ko"] for key, entry in i18n.STRINGS.items() if key not in SAMPLE_INPUTS}
    history = json.loads((ASSETS / "history.json").read_text(encoding="utf-8"))
    found |= {f"history:{event['name']}": event["ko"] + " " + event.get("name_ko", event["name"]) for event in history["events"]}
    for entry in json.loads((ASSETS / "embeddings.json").read_text(encoding="utf-8"))["polysemy"]:
        found |= {f"embeddings:{entry['word']}:{use['text'][:12]}": use["sense"]["ko"] for use in entry["uses"]}
    for sample in json.loads((ASSETS / "samples.json").read_text(encoding="utf-8"))["samples"]:
        found[f"samples:{sample['label']['en']}"] = sample["label"]["ko"]
    found |= {f"glossary:{term['en']}": term["about"]["ko"] for term in GLOSSARY["terms"]}
    for lesson in lessons.load_all()[0]:  # the bundled lessons' Korean, questions included
        found[f"lesson:{lesson.id}"] = lesson.title.ko
        for number, step in enumerate(lesson.steps, start=1):
            question = step.question.prompt.ko if step.question else ""
            found[f"lesson:{lesson.id}:{number}"] = " ".join((step.title.ko, step.narrative.ko, question))
    return found


def test_every_string_exists_in_both_languages():
    assert i18n.missing_translations() == []
    assert i18n.t("app_title", "ko") == "LLM 내부 탐색기"


def test_every_string_is_used_by_the_code_or_a_lesson():
    """Named literally, or built from a prefix the code writes (f"error_{kind}", 'step_' + name, translated("stat_"))."""
    root = Path(__file__).resolve().parent.parent
    sources = [*root.glob("pages/**/*.py"), *root.glob("explorer/*.py"), root / "app.py", *root.glob("assets/lessons/*.toml")]
    code = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    literal = set(re.findall(r"[\"']([a-z0-9_]+)[\"']", code))
    prefixes = set(re.findall(r"f[\"']([a-z_]+)\{", code)) | set(re.findall(r"[\"']([a-z_]+_)[\"'] \+", code)) \
        | set(re.findall(r"translated\([\"']([a-z_]+)[\"']", code))
    unused = [key for key in i18n.STRINGS if key not in literal and not key.startswith(tuple(prefixes))]
    assert not unused, unused


def test_every_glossary_term_has_both_languages_and_an_explanation():
    for term in GLOSSARY["terms"]:
        assert term["ko"] and term["en"] and term["about"]["ko"] and term["about"]["en"], term
        assert term["ko"] not in term["avoid_ko"]


def test_korean_strings_use_the_glossarys_terms():
    """A term the glossary names is written its way everywhere: 토크나이저, never 토큰화기; 파라미터, never 매개변수…"""
    drifted = [(where, avoid, term["ko"]) for where, text in korean_strings().items()
               for term in GLOSSARY["terms"] for avoid in term["avoid_ko"] if avoid in text]
    assert drifted == []


def test_no_english_in_the_korean_ui_but_names():
    allowed = set(GLOSSARY["latin_in_korean"])
    stray = {}
    for where, text in korean_strings().items():
        words = {word for word in LATIN_WORD.findall(LITERAL.sub(" ", text)) if len(word) > 1} - allowed  # a, k: math
        if words:
            stray[where] = sorted(words)
    assert stray == {}


def test_the_glossarys_terms_appear_in_the_strings_they_describe():
    korean = " ".join(korean_strings().values())
    used = [term["ko"] for term in GLOSSARY["terms"] if term["ko"] in korean]
    assert len(used) >= 0.8 * len(GLOSSARY["terms"])  # a glossary of the words the app actually uses


@pytest.mark.parametrize("kind", ["events", "sizes"])
def test_every_history_entry_has_a_year_and_a_source(kind):
    history = json.loads((ASSETS / "history.json").read_text(encoding="utf-8"))
    for entry in history[kind]:
        assert 2000 < entry["year"] <= 2026, entry
        assert entry["source"]["title"] and entry["source"]["url"].startswith("https://"), entry
        if kind == "sizes":
            assert entry["parameters"] > 1e6, entry


def test_history_facts_a_lecture_relies_on():
    history = json.loads((ASSETS / "history.json").read_text(encoding="utf-8"))
    years = {event["name"]: event["year"] for event in history["events"]}
    assert years["RAG"] == 2020 and years["InstructGPT"] == 2022 and years["ChatGPT"] == 2022
    assert years["GPT-4 · Claude · Gemini"] == 2023 and years["Llama · Qwen"] == 2023
    assert "GPT-3.5" in next(e for e in history["events"] if e["name"] == "ChatGPT")["en"]
    sizes = {size["name"]: size["parameters"] for size in history["sizes"]}
    assert sizes["BERT-base"] == 110_000_000 and sizes["BERT-large"] == 340_000_000
    assert sizes["Llama 2 70B"] * 16 / 8 == 140e9  # the lecture's "140 GB in fp16"
