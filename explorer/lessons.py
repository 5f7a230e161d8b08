"""Lessons as data: one TOML file per lesson in assets/lessons/, validated with pydantic.

A lesson is a list of steps. Each step has a title and a narrative in Korean and English, one live view (a name the
app knows, e.g. "attention.one_head") with the settings that view keeps in its URL, and optionally a question the
learner answers before the live answer is revealed. A broken file is reported with its line, the step and the field.

    id = "attention"          # optional: the file name without .toml
    order = 4                 # where the lesson sits in the course
    title = { ko = "어텐션", en = "Attention" }

    [[steps]]
    view = "attention.one_head"
    params = { atext = "The cat sat on the mat.", layer = 3 }
    title = { ko = "…", en = "…" }
    narrative = { ko = \"\"\"…\"\"\", en = \"\"\"…\"\"\" }
    question = { kind = "choice", prompt = { ko = "…", en = "…" }, options = ["0", "1"], answer = "previous_token_head" }
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from explorer import activations, prediction, tokenize
from explorer.capture_attention import HEAD_STATS
from explorer.labels import token_label, visible
from explorer.models import BUNDLED

LESSONS = Path(__file__).resolve().parent.parent / "assets" / "lessons"
QUESTION_KINDS = ("choice", "number", "text")


class Text(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ko: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["choice", "number", "text"]
    prompt: Text
    options: list[str] = []  # for "choice"
    answer: str  # the name of a live answer (ANSWERS below), computed when revealed
    args: dict[str, str | int | float | bool] = {}

    @field_validator("options")
    @classmethod
    def _no_empty_options(cls, options: list[str]) -> list[str]:
        if any(not option.strip() for option in options):
            raise ValueError("an option is empty")
        return options


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Text
    narrative: Text
    view: str = Field(min_length=1)
    params: dict[str, str | int | float | bool | list[str]] = {}
    question: Question | None = None
    model: str | None = None  # a bundled model the step needs (Korean next tokens: Gemma; a chat template: SmolLM2)

    @field_validator("model")
    @classmethod
    def _bundled(cls, model: str | None) -> str | None:
        if model is not None and model not in BUNDLED:
            raise ValueError(f"not a bundled model: {model!r} (one of {', '.join(BUNDLED)})")
        return model


class Lesson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9_-]+$")
    order: int = 100
    title: Text
    steps: list[Step] = Field(min_length=1)


class LessonError(ValueError):
    """A lesson file that cannot be used: `file`, `line`, the step (1-based) and field, and what is wrong."""

    def __init__(self, file: str, line: int | None, step: int | None, field: str, problem: str):
        self.file, self.line, self.step, self.field, self.problem = file, line, step, field, problem
        where = f"{file}" + (f", line {line}" if line else "") + (f", step {step}" if step else "")
        super().__init__(f"{where}: {field}: {problem}")


def parse(text: str, file: str, known_views: set[str] | None = None, known_answers: set[str] | None = None) -> Lesson:
    """A lesson from TOML text; raises LessonError naming the line, step and field of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _line_of_message(str(error))
        raise LessonError(file, line, None, "toml", str(error).split(" (at line")[0]) from None
    data.setdefault("id", Path(file).stem)
    try:
        lesson = Lesson.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        location = list(first["loc"])
        step = location[1] + 1 if len(location) > 1 and location[0] == "steps" and isinstance(location[1], int) else None
        field = ".".join(str(part) for part in (location[2:] if step else location)) or "lesson"
        raise LessonError(file, _line_of(text, step, location[2:] if step else location), step, field, first["msg"]) from None
    for number, step in enumerate(lesson.steps, start=1):
        if known_views is not None and step.view not in known_views:
            raise LessonError(file, _line_of(text, number, ["view"]), number, "view", f"unknown view '{step.view}'")
        question = step.question
        if question is not None and known_answers is not None and question.answer not in known_answers:
            raise LessonError(file, _line_of(text, number, ["question"]), number, "question.answer",
                              f"unknown answer '{question.answer}'")
        if question is not None and question.kind == "choice" and len(question.options) < 2:
            raise LessonError(file, _line_of(text, number, ["question"]), number, "question.options",
                              "a choice needs at least two options")
    return lesson


def _line_of_message(message: str) -> int | None:
    found = re.search(r"line (\d+)", message)
    return int(found.group(1)) if found else None


def _line_of(text: str, step: int | None, location: list) -> int | None:
    """The line of `step`'s `[[steps]]` header (or of the whole file), then of the first key named in `location`."""
    lines = text.split("\n")
    start = 0
    if step is not None:
        headers = [i for i, line in enumerate(lines) if line.strip() == "[[steps]]"]
        if step - 1 >= len(headers):
            return None
        start = headers[step - 1]
        end = headers[step] if step < len(headers) else len(lines)
    else:
        end = next((i for i, line in enumerate(lines) if line.strip() == "[[steps]]"), len(lines))
    names = [str(part) for part in location if isinstance(part, str)]
    for name in names[:1]:
        for i in range(start, end):
            if re.match(rf"\s*{re.escape(name)}\s*[=.]", lines[i]) or re.match(rf"\s*\[steps\.{re.escape(name)}\]", lines[i]):
                return i + 1
    return start + 1


def load_all(folder: Path = LESSONS, known_views: set[str] | None = None,
             known_answers: set[str] | None = None) -> tuple[list[Lesson], list[LessonError]]:
    """Every lesson in the folder, in course order, and the files that could not be used (with why)."""
    lessons, errors = [], []
    for path in sorted(folder.glob("*.toml")):
        try:
            lessons.append(parse(path.read_text(encoding="utf-8"), path.name, known_views, known_answers))
        except LessonError as error:
            errors.append(error)
        except (OSError, UnicodeDecodeError) as error:
            errors.append(LessonError(path.name, None, None, "file", str(error)))
    seen: set[str] = set()
    unique = []
    for lesson in sorted(lessons, key=lambda lesson: (lesson.order, lesson.id)):
        if lesson.id in seen:
            errors.append(LessonError(f"{lesson.id}.toml", None, None, "id", "another lesson has this id"))
            continue
        seen.add(lesson.id)
        unique.append(lesson)
    return unique, errors


# ---------------------------------------------------------------- live answers (deterministic: greedy, no sampling)

HISTORY = Path(__file__).resolve().parent.parent / "assets" / "history.json"


def _next_token(loaded, text: str) -> str:
    logits, _ = prediction.next_token_logits(loaded, [int(i) for i in activations.encode(loaded, text)[0]])
    return visible(token_label(loaded.tokenizer, int(logits.argmax())))


def _token_count(loaded, text: str, tokenizer: str) -> str:
    return str(tokenize.tokenize_with(tokenizer, text).count)


def _previous_token_head(loaded, text: str, layer: int) -> str:
    """The head of `layer` that puts the most attention on the previous token."""
    stats = activations.capture(loaded, text, [f"blocks.{layer}.attn.head_stats"])[f"blocks.{layer}.attn.head_stats"]
    return str(int(stats[:, HEAD_STATS.index("previous")].argmax()))  # stats: (heads, stats)


def _kv_heads(loaded) -> str:
    return str(loaded.info.kv_heads)


def _size_ratio(loaded, larger: str, smaller: str) -> str:
    sizes = {entry["name"]: entry["parameters"] for entry in json.loads(HISTORY.read_text(encoding="utf-8"))["sizes"]}
    return f"{sizes[larger] / sizes[smaller]:,.0f}"


def _base_stops(loaded) -> str:
    """How many held-out instructions the model answers and then ends its turn, unprompted by any training."""
    from explorer import alignment

    _, stopped = alignment.answers(loaded, [pair.instruction for pair in alignment.bundled()["held_out"]])
    return str(sum(stopped))


def _prompt_accuracy(loaded, language: str, style: str) -> str:
    from explorer import prompting

    return f"{prompting.measure(loaded, language, style).accuracy:.0%}"


def _api_extra_tokens(loaded, korean: str, english: str) -> str:
    """How many more input tokens the Korean request takes than the English one, in the model's chat template."""
    from explorer import api

    def counted(text: str) -> int:
        return len(api.prompt_ids(loaded.tokenizer, [{"role": "user", "content": text}]))
    return str(counted(korean) - counted(english))


ANSWERS = {  # name -> (the model it reads: "decoder", "model" (the current one) or None, the function)
    "next_token": ("decoder", _next_token),
    "token_count": (None, _token_count),
    "previous_token_head": ("model", _previous_token_head),
    "kv_heads": ("model", _kv_heads),
    "size_ratio": (None, _size_ratio),
    "base_stops": ("decoder", _base_stops),
    "prompt_accuracy": ("decoder", _prompt_accuracy),
    "api_extra_tokens": ("decoder", _api_extra_tokens),
}


def live_answer(name: str, loaded, args: dict) -> str:
    """A question's answer computed now, on `loaded` (the model ANSWERS says it reads; None for the others)."""
    return ANSWERS[name][1](loaded, **args)
