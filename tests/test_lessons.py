"""Lessons as data: the bundled course loads, a broken file names its line, step and field, a new file appears."""

from pathlib import Path

import pytest

from explorer import lessons

GOOD_STEP = '''
[[steps]]
view = "tokens.cost"
title = { ko = "제목", en = "Title" }
narrative = { ko = "설명", en = "Text" }
'''


def _known():
    from pages.views import lessons as view

    return set(view.VIEWS), set(lessons.ANSWERS)


def test_the_bundled_course_loads_in_order_with_six_to_ten_steps_each():
    views, answers = _known()
    found, errors = lessons.load_all(known_views=views, known_answers=answers)
    assert errors == []
    assert [lesson.id for lesson in found] == ["tokenization", "embeddings", "rnn-to-transformer", "attention", "next-token",
                                               "scale-and-history", "finetuning-and-rlhf", "rag", "quantization",
                                               "gpt3-to-chatgpt"]
    for lesson in found:
        assert 6 <= len(lesson.steps) <= 10, lesson.id
        assert sum(step.question is not None for step in lesson.steps) <= 2


@pytest.mark.parametrize("text, line, step, field", [
    ('title = { ko = "a", en = "b" }\n' + GOOD_STEP + GOOD_STEP.replace('narrative = { ko = "설명", en = "Text" }', 'narrative = { ko = "설명" }'),
     11, 2, "narrative.en"),
    ('title = { ko = "a", en = "b" }\n' + GOOD_STEP + GOOD_STEP.replace('"tokens.cost"', '"attention.nowhere"'), 9, 2, "view"),
    ('title = { ko = "a", en = "b" }\n' + GOOD_STEP.replace('view = "tokens.cost"', 'view = "tokens.cost"\nview = "x"'), 5, None, "toml"),
    ('title = { ko = "a" }\n' + GOOD_STEP, 1, None, "title.en"),
    ('title = { ko = "a", en = "b" }\n' + GOOD_STEP.replace('narrative', 'question = { kind = "choice", prompt = { ko = "q", en = "q" }, '
                                                         'options = ["1", "2"], answer = "nothing" }\nnarrative'), 6, 1, "question.answer"),
])
def test_a_broken_lesson_names_its_line_step_and_field(text, line, step, field):
    views, answers = _known()
    with pytest.raises(lessons.LessonError) as broken:
        lessons.parse(text, "broken.toml", views, answers)
    assert (broken.value.line, broken.value.step, broken.value.field) == (line, step, field), str(broken.value)
    assert str(broken.value).startswith("broken.toml, line")


def test_a_new_file_in_the_folder_is_a_lesson_and_a_duplicate_id_is_reported(tmp_path: Path):
    (tmp_path / "mine.toml").write_text('title = { ko = "내 강의", en = "Mine" }\norder = 0\n' + GOOD_STEP, encoding="utf-8")
    (tmp_path / "copy.toml").write_text('id = "mine"\ntitle = { ko = "b", en = "b" }\n' + GOOD_STEP, encoding="utf-8")
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe not utf-8")
    found, errors = lessons.load_all(tmp_path, *_known())
    assert [lesson.id for lesson in found] == ["mine"]
    assert len(errors) == 2


def test_live_answers_are_the_models_own(smollm):
    import torch

    from explorer.labels import token_label, visible

    text = "The capital of France is"
    ids = smollm.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        best = int(smollm.model(ids).logits[0, -1].argmax())  # the model's own forward
    assert lessons.live_answer("next_token", smollm, {"text": text}) == visible(token_label(smollm.tokenizer, best))
    assert lessons.live_answer("kv_heads", smollm, {}) == "3"
    assert lessons.live_answer("token_count", None, {"text": "a b", "tokenizer": "whitespace"}) == "2"
