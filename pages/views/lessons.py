"""Lesson views: the course's lessons walked step by step over the same live views the pages use, a question to
answer before the live answer is revealed, presenter mode with keys (→ ← PageDown PageUp), and a handout."""

from __future__ import annotations

import json
from html import escape
from typing import Callable

import streamlit as st
from plotly.offline import get_plotlyjs
from streamlit_shortcuts import add_shortcuts

from explorer import lessons, models
from explorer.models import LoadedModel
from pages.common import bounded, collecting_figures, compute, current_model, default_model, lang, one_of, setting, tr, url_state
from pages.views import (alignment, api, attention, classroom, embeddings, finetune, history, inside, lab, predict, prompting,
                         qlora, quantize, rag, recurrent, tokens, transfer)

PARAMS = ("lesson", "step")


def _pinned() -> str | None:
    """The bundled model the current step names (a Korean next-token step needs Gemma), else None."""
    return st.session_state.get("lesson_model")


def _decoder() -> LoadedModel | None:
    """The model a decoder view needs: the step's own, the sidebar's when it is one, else the language's default."""
    if _pinned():
        return current_model(_pinned())
    loaded = current_model()
    if loaded is not None and loaded.info.family == "decoder":
        return loaded
    return current_model(default_model())


def _model() -> LoadedModel | None:
    return current_model(_pinned()) if _pinned() else current_model()


def _with(model: Callable[[], LoadedModel | None], draw: Callable[[LoadedModel], None]) -> Callable[[], None]:
    def view() -> None:
        loaded = model()
        if loaded is not None:
            draw(loaded)
    return view


def _then(first: Callable, *rest: Callable) -> Callable[[LoadedModel], None]:
    """A view that draws `first`'s inputs and passes what they return to `rest` (nothing drawn if refused)."""
    def draw(loaded: LoadedModel) -> None:
        shown = first(loaded)
        if shown is not None:
            for view in rest:
                view(loaded, shown)
    return draw


def _recurrent(draw: Callable) -> Callable[[], None]:
    def view() -> None:
        pair = recurrent.pair()
        if pair is not None:
            draw(pair)
    return view


def _tokens_text() -> str:
    return setting("ttext", tokens.SAMPLES["samples"][2]["text"])


def _quantize(loaded: LoadedModel, part: str) -> None:
    if part == "memory":
        quantize.caveat(loaded)
    group, symmetric = quantize.controls()
    {"memory": quantize.memory, "weights": quantize.weights,
     "behaviour": quantize.behaviour}[part](loaded, quantize.schemes(group, symmetric))


def _rag(*shown: str) -> Callable[[LoadedModel], None]:
    def view(decoder: LoadedModel) -> None:
        encoder = current_model(models.MINILM)
        if encoder is not None:
            rag.pipeline(encoder, decoder, shown or rag.STAGES)
    return view


def _lab_prompt(draw: Callable) -> Callable[[LoadedModel], None]:
    def view(loaded: LoadedModel) -> None:
        chosen = lab.prompt(loaded)
        if chosen is not None:
            draw(loaded, *chosen)
    return view


VIEWS: dict[str, Callable[[], None]] = {  # name in a lesson file -> the page's own view, drawn with the step's settings
    "tokens.first": tokens.first_tokenizer,
    "tokens.side_by_side": _with(_model, tokens.side_by_side),
    "tokens.pipeline": _with(_model, lambda loaded: tokens.pipeline(loaded, _tokens_text())),
    "tokens.bpe": lambda: tokens.bpe_live(_tokens_text()),
    "tokens.cost": tokens.cost,
    "embeddings.text_to_vectors": _with(_model, embeddings.text_to_vectors),
    "embeddings.vocabulary": _with(_model, lambda loaded: embeddings.vocabulary(loaded, None)),
    "embeddings.analogies": _with(_model, embeddings.analogies),
    "embeddings.in_context": _with(_model, embeddings.in_context),
    "embeddings.sentence_search": _with(_model, embeddings.sentence_search),
    "inside.shape": _with(_model, inside.shape),
    "inside.head_map": _with(_model, inside.head_map),
    "attention.one_head": _with(_model, _then(attention.inputs, attention.one_head)),
    "attention.roles": _with(_model, _then(attention.inputs, attention.roles)),
    "attention.compare": _with(_model, _then(attention.inputs, attention.compare)),
    "predict.candidates": _with(_decoder, _then(predict.inputs, predict.candidates)),
    "predict.greedy_vs_sampled": _with(_decoder, _then(predict.inputs, predict.greedy_vs_sampled)),
    "predict.logit_lens": _with(_decoder, _then(predict.inputs, lambda loaded, read: predict.logit_lens(read))),
    "predict.surprise": _with(_decoder, _then(predict.inputs, lambda loaded, read: predict.surprise(read))),
    "recurrent.same_input": _recurrent(recurrent.same_input),
    "recurrent.memory": _recurrent(recurrent.memory),
    "recurrent.speed": _recurrent(recurrent.speed),
    "recurrent.long_range": _recurrent(recurrent.long_range),
    "history.timeline": history.timeline,
    "history.sizes": history.sizes,
    "transfer.learning_curves": transfer.learning_curves,
    "transfer.distillation": transfer.distillation,
    "finetune.lora": _with(_decoder, finetune.lora),
    "finetune.qlora": _with(_decoder, qlora.qlora_training),
    "finetune.chat": _with(_decoder, finetune.chat_template),
    "finetune.api": _with(_decoder, api.api_call),
    "alignment.dpo": _with(_decoder, alignment.preference),
    "alignment.sft": _with(_decoder, alignment.sft),
    "alignment.reward": _with(_decoder, alignment.reward),
    "prompting.styles": _with(_decoder, prompting.prompting_styles),
    "rag.pipeline": _with(_decoder, _rag()),
    "rag.documents": _with(_decoder, _rag("documents")),
    "rag.retrieval": _with(_decoder, _rag("retrieval")),
    "rag.answer": _with(_decoder, _rag("prompt", "answer")),
    "rag.drew_on": _with(_decoder, _rag("answer", "drew_on")),
    "quantize.memory": _with(_model, lambda loaded: _quantize(loaded, "memory")),
    "quantize.weights": _with(_model, lambda loaded: _quantize(loaded, "weights")),
    "quantize.behaviour": _with(_model, lambda loaded: _quantize(loaded, "behaviour")),
    "lab.attribute": _with(_decoder, _lab_prompt(lab.attribution)),
    "lab.ablate": _with(_decoder, _lab_prompt(lab.ablation)),
    "lab.patch": _with(_decoder, lab.patching),
    "lab.steer": _with(_decoder, lab.steering),
}


# ---------------------------------------------------------------- live answers (deterministic: greedy, no sampling)

@st.cache_data(show_spinner=False, max_entries=128)
def _answer(_loaded, fingerprint: str, name: str, args_json: str) -> str:
    return lessons.live_answer(name, _loaded, json.loads(args_json))


# ---------------------------------------------------------------- lessons

PRESENTER_CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] { display: none !important; }
.st-key-lesson_narrative p { font-size: 1.9rem !important; line-height: 1.55 !important; }
</style>"""  # one step, full width: the app's presenter type sizes apply too

@st.cache_data(show_spinner=False, ttl=5)
def course() -> tuple[list[lessons.Lesson], list[str]]:
    """Every lesson in assets/lessons (re-read every few seconds, so a new file appears without a restart) and the
    files that could not be used, each with its line, step and field."""
    found, errors = lessons.load_all(known_views=set(VIEWS), known_answers=set(lessons.ANSWERS))
    return found, [str(error) for error in errors]


def choose(found: list[lessons.Lesson]) -> tuple[lessons.Lesson, int]:
    """The lesson and step from the URL (`?lesson=attention&step=3`), clamped to what exists."""
    ids = [lesson.id for lesson in found]
    chosen = st.selectbox(tr("lesson_choose"), ids, key=url_state("lesson", ids[0], one_of(ids)),
                          format_func=lambda i, titles={l.id: l.title for l in found}, language=lang(): getattr(titles[i], language))
    lesson = next(item for item in found if item.id == chosen)
    count = len(lesson.steps)
    return lesson, int(st.session_state[url_state("step", 1, bounded(int, 1, count))])


def _move(delta: int, count: int) -> None:
    st.session_state["step"] = min(max(1, int(st.session_state["step"]) + delta), count)


def navigation(lesson: lessons.Lesson, step: int, presenting: bool) -> None:
    """Previous / next buttons, the progress through the lesson, and keys in presenter mode."""
    count = len(lesson.steps)
    left, middle, right = st.columns([1, 4, 1])
    left.button(tr("lesson_previous"), key="lesson_prev", on_click=_move, args=(-1, count), disabled=step <= 1,
                width="stretch")
    right.button(tr("lesson_next"), key="lesson_next", on_click=_move, args=(1, count), disabled=step >= count,
                 width="stretch")
    middle.progress(step / count, text=tr("lesson_progress", step=step, count=count))
    if presenting:  # a clicker sends PageDown / PageUp
        add_shortcuts(lesson_next=["arrowright", "pagedown"], lesson_prev=["arrowleft", "pageup"])


def _apply_settings(lesson: lessons.Lesson, step: int) -> None:
    """The step's view settings, set once when the step is entered (the learner may then change them)."""
    entered = (lesson.id, step)
    if st.session_state.get("lesson_entered") == entered:
        return
    st.session_state["lesson_entered"] = entered
    for name, value in lesson.steps[step - 1].params.items():
        st.session_state[name] = value
        st.session_state["_keep_" + name] = value


def show_step(lesson: lessons.Lesson, step: int) -> list:
    """The step's title, narrative, question and live view; returns the figures the view drew."""
    language = lang()
    current = lesson.steps[step - 1]
    _apply_settings(lesson, step)
    st.session_state["lesson_model"] = current.model
    st.header(getattr(current.title, language))
    if current.model:
        st.caption(tr("lesson_model", model=current.model))
    with st.container(key="lesson_narrative"):
        st.markdown(getattr(current.narrative, language))
    if current.question is not None:
        question(lesson, step, current.question)
    with collecting_figures() as figures, st.container(key="lesson_view"):
        VIEWS[current.view]()
    return figures


def question(lesson: lessons.Lesson, step: int, asked: lessons.Question) -> None:
    """Guess first; the answer is computed live when revealed (greedy, fixed seeds: the same for the whole class).
    In a class, a student answers for the room and sees the answer when the lecturer reveals it; the lecturer sees
    the room's answers live."""
    language = lang()
    key = f"{lesson.id}_{step}"
    seat = classroom.current()
    with st.container(key="lesson_question", border=True):
        st.markdown(f"**{tr('lesson_predict')}** {getattr(asked.prompt, language)}")
        if isinstance(seat, classroom.Student):
            classroom.student_question(seat, key, asked, lambda: _live_answer(asked))
            return
        if asked.kind == "choice":
            guess = st.radio(tr("lesson_guess"), asked.options, index=None, key=f"guess_{key}", horizontal=True)
        elif asked.kind == "number":
            guess = st.number_input(tr("lesson_guess"), value=None, step=1, key=f"guess_{key}")
        else:
            guess = st.text_input(tr("lesson_guess"), key=f"guess_{key}")
        revealed = st.session_state.get(f"revealed_{key}", False)
        st.button(tr("lesson_reveal"), key=f"reveal_{key}", disabled=revealed, on_click=_reveal, args=(seat, key))
        answer = _live_answer(asked) if revealed else None
        if answer is not None:
            st.markdown(tr("lesson_answer", answer=escape(answer)))
            if guess not in (None, ""):
                right = _normalise(guess) == _normalise(answer)
                (st.success if right else st.info)(tr("lesson_right" if right else "lesson_wrong", guess=escape(str(guess))))
        if isinstance(seat, classroom.Lecturer):
            classroom.lecturer_answers(seat, key, asked, answer)


def _reveal(seat, key: str) -> None:
    st.session_state[f"revealed_{key}"] = True
    classroom.reveal(seat, key)


def _live_answer(asked: lessons.Question) -> str | None:
    reads = lessons.ANSWERS[asked.answer][0]
    loaded = {"decoder": _decoder, "model": _model}.get(reads, lambda: None)()
    return compute(_answer, loaded, loaded.fingerprint if loaded else "", asked.answer,
                   json.dumps(asked.args, sort_keys=True))


def _normalise(value) -> str:
    text = str(value).replace("␣", " ").strip().lower()
    try:
        return str(float(text.replace(",", "")))
    except ValueError:
        return text


def show_errors(errors: list[str]) -> None:
    """Files in assets/lessons that could not be used: each with its line, step, field and what is wrong."""
    for error in errors:
        st.error(tr("error_lesson_file", detail=error), icon="⚠️")


# ---------------------------------------------------------------- handout

HANDOUT_KEY = "handout_walk"


def handout(lesson: lessons.Lesson, step: int, figures: list) -> None:
    """Walk every step once (one per run) collecting its figures, then offer one self-contained HTML file."""
    walk = st.session_state.get(HANDOUT_KEY)
    if walk is not None and walk["lesson"] == lesson.id:
        walk["figures"][str(step)] = [(name, figure.to_json()) for name, figure in figures]
        if step < len(lesson.steps):
            st.session_state["step"] = step + 1
            st.rerun()
        st.session_state.pop(HANDOUT_KEY)
        st.session_state["step"] = walk["return_to"]
        st.session_state["handout_html"] = (lesson.id, lang(), build_handout(lesson, lang(), walk["figures"]))
        st.rerun()
    ready = st.session_state.get("handout_html")
    if ready is not None and ready[:2] == (lesson.id, lang()):
        st.download_button(tr("lesson_handout_download"), ready[2].encode("utf-8"), f"{lesson.id}-{lang()}.html",
                           "text/html", key="handout_download")
    else:
        st.button(tr("lesson_handout"), key="handout_start", on_click=_start_walk, args=(lesson.id, step))


def _start_walk(lesson_id: str, step: int) -> None:
    st.session_state[HANDOUT_KEY] = {"lesson": lesson_id, "return_to": step, "figures": {}}
    st.session_state["step"] = 1


def build_handout(lesson: lessons.Lesson, language: str, figures: dict[str, list[tuple[str, str]]]) -> str:
    """One HTML file: every step's title and narrative, then its figures as interactive plotly (plotly.js inlined
    once; nothing is fetched when it opens)."""
    parts = []
    for number, step in enumerate(lesson.steps, start=1):
        narrative = "".join(f"<p>{escape(paragraph)}</p>" for paragraph in getattr(step.narrative, language).split("\n\n"))
        parts.append(f"<section><h2>{number}. {escape(getattr(step.title, language))}</h2>{narrative}")
        for index, (name, spec) in enumerate(figures.get(str(number), [])):
            element = f"figure-{number}-{index}"
            parts.append(f'<div id="{element}" class="figure" data-name="{escape(name)}"></div>'
                         f'<script>(function(){{var f={spec};Plotly.newPlot("{element}",f.data,f.layout,'
                         f'{{displaylogo:false,responsive:true}});}})();</script>')
        parts.append("</section>")
    title = escape(getattr(lesson.title, language))
    return (f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8"><title>{title}</title>'
            '<meta name="generator" content="LLM Internals Explorer">'
            '<style>body{font-family:"Noto Sans CJK KR","Noto Sans KR",sans-serif;max-width:1100px;margin:2rem auto;'
            'line-height:1.6;padding:0 1rem}.figure{margin:1rem 0}</style>'
            f'<script>{get_plotlyjs()}</script></head><body><h1>{title}</h1>{"".join(parts)}</body></html>')
