"""Next-token views: the distribution under the sampling controls, writing step by step, greedy against sampled,
the logit lens, surprise."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np
import pandas as pd
import streamlit as st

from explorer import figures, models, prediction
from explorer.labels import token_label, visible
from explorer.models import LoadedModel
from pages.common import bounded, compute, current_model, one_of, show_figure, tr, translated, url_state

CANDIDATES, LENS_POSITIONS, COMPARE_STEPS = 20, 16, 12
PARAMS = ("ptext", "temp", "topk", "topp", "seed", "vs")
DECODERS = [key for key, bundled in models.BUNDLED.items() if bundled.family == "decoder"]
SIDE_CANDIDATES = 10


@st.cache_data(show_spinner=False, max_entries=16)
def _reading(_loaded, fingerprint: str, text: str) -> prediction.TextReading:
    """Everything about the text that no widget changes: one forward, kept small (no tokens x vocabulary array)."""
    return prediction.read_text(_loaded, text, lens_positions=LENS_POSITIONS)


@st.cache_data(show_spinner=False, max_entries=8)
def _next_logits(_loaded, fingerprint: str, ids: tuple[int, ...]) -> np.ndarray:
    """(vocab,) logits after exact ids: the text's, then the byte pieces of a character not yet complete."""
    return prediction.next_token_logits(_loaded, list(ids))[0]


@st.cache_data(show_spinner=False, max_entries=64)
def _continuations(_loaded, fingerprint: str, text: str, temperature: float, top_k: int, top_p: float, seed: int):
    greedy = prediction.generate(_loaded, text, COMPARE_STEPS, 0.0)
    sampled = prediction.generate(_loaded, text, COMPARE_STEPS, temperature, top_k, top_p, seed)
    return greedy, sampled


@dataclass
class Reading:
    text: str
    temperature: float
    top_k: int
    top_p: float
    seed: int
    reading: prediction.TextReading


def inputs(loaded: LoadedModel) -> Reading | None:
    """The text and the sampling controls; the text read once (None: refused, already explained)."""
    text_key = url_state("ptext", tr("predict_sample"))
    if "pending_append" in st.session_state:  # applied before the text area exists, as Streamlit requires
        st.session_state[text_key] += st.session_state.pop("pending_append")
    text = st.text_area(tr("predict_text"), key=text_key, height=90)
    left, middle, right, far = st.columns(4)
    temperature = left.slider(tr("temperature"), 0.0, 2.0, step=0.05, key=url_state("temp", 1.0, bounded(float, 0.0, 2.0)), help=tr("temperature_help"))
    top_k = middle.number_input(tr("top_k"), 0, 1000, step=1, key=url_state("topk", 0, bounded(int, 0, 1000)))
    top_p = right.slider(tr("top_p"), 0.05, 1.0, step=0.05, key=url_state("topp", 1.0, bounded(float, 0.05, 1.0)))
    seed = far.number_input(tr("seed"), 0, 10_000, step=1, key=url_state("seed", 0, bounded(int, 0, 10_000)))
    reading = compute(_reading, loaded, loaded.fingerprint, text)
    if reading is None:
        return None
    if reading.dropped_tokens:
        st.warning(tr("truncated", dropped=reading.dropped_tokens))
    return Reading(text, temperature, int(top_k), top_p, int(seed), reading)


def candidates(loaded: LoadedModel, read: Reading) -> None:
    """The next-token bars under temperature, top-k and top-p, and tokens appended one at a time."""
    # A byte-level token can end part-way through a Hangul syllable or an emoji: such ids wait here until the
    # character is complete, and the model is asked about the exact ids rather than the re-read text.
    waiting = st.session_state.setdefault("waiting_ids", [])
    next_logits = read.reading.next_logits
    if waiting:
        next_logits = compute(_next_logits, loaded, loaded.fingerprint,
                              tuple(int(i) for i in read.reading.token_ids) + tuple(waiting))
        if next_logits is None:  # refused (out of memory, say), and already explained
            return
    distribution = prediction.filter_distribution(next_logits, read.temperature, read.top_k, read.top_p)
    top_ids = np.argsort(-distribution.probs)[:CANDIDATES]  # (20,) most likely first
    labels = [visible(token_label(loaded.tokenizer, int(i))) for i in top_ids]
    show_figure(
        figures.next_token_bars(labels, distribution.probs[top_ids], distribution.kept[top_ids], tr("bars_title"), tr("probability")),
        "next_token", pd.DataFrame({"token": labels, "id": top_ids, "probability": distribution.probs[top_ids],
                                    "kept": distribution.kept[top_ids]}), key="bars",
    )
    added = st.session_state.setdefault("added_tokens", [])

    def append(token_id: int) -> None:
        added.append((token_label(loaded.tokenizer, token_id), float(distribution.probs[token_id])))
        piece = prediction.complete_characters(loaded.tokenizer, waiting, token_id)
        if piece is not None:
            st.session_state.pending_append = piece

    first, second, third = st.columns(3)
    if first.button(tr("append_top"), key="append_top"):
        append(int(top_ids[0]))
        st.rerun()
    if second.button(tr("append_sampled"), key="append_sampled"):
        generator = np.random.default_rng(read.seed + len(added))  # repeatable for a given seed and step
        append(int(generator.choice(len(distribution.sampling_probs), p=distribution.sampling_probs)))
        st.rerun()
    with third:
        chosen = st.selectbox(tr("choose_token"), range(len(top_ids)), format_func=lambda i: f"{i + 1}. {labels[i]}")
        if st.button(tr("append_chosen"), key="append_chosen"):
            append(int(top_ids[chosen]))
            st.rerun()
    if added:
        st.caption(tr("added_tokens"))
        st.html(figures.token_chips_html([t for t, _ in added], [p for _, p in added]))
        if st.button(tr("reset_added"), key="reset_added"):
            added.clear()
            waiting.clear()
            st.rerun()


def greedy_vs_sampled(loaded: LoadedModel, read: Reading) -> None:
    st.subheader(tr("greedy_vs_sampled", n=COMPARE_STEPS))
    continuations = compute(_continuations, loaded, loaded.fingerprint, read.text, read.temperature, read.top_k,
                            read.top_p, read.seed)
    if continuations is None:  # refused (out of memory, say), and already explained
        return
    (greedy_ids, greedy_probs), (sampled_ids, sampled_probs) = continuations
    decode = loaded.tokenizer.decode
    label = lambda token_id: token_label(loaded.tokenizer, token_id)  # noqa: E731
    greedy_column, sampled_column = st.columns(2)
    greedy_column.caption(tr("greedy"))
    greedy_column.html(f"<b>{escape(read.text)}</b>{escape(decode(greedy_ids))}")  # whole text: bytes joined into characters
    greedy_column.html(figures.token_chips_html([label(i) for i in greedy_ids], greedy_probs))
    sampled_column.caption(tr("sampled", t=read.temperature, seed=read.seed))
    sampled_column.html(f"<b>{escape(read.text)}</b>{escape(decode(sampled_ids))}")
    sampled_column.html(figures.token_chips_html([label(i) for i in sampled_ids], sampled_probs))


def logit_lens(read: Reading) -> None:
    reading = read.reading
    lens_tokens = [[visible(token) for token in row] for row in reading.lens_labels]
    positions = [visible(token) for token in reading.token_labels[-LENS_POSITIONS:]]
    show_figure(
        figures.logit_lens_heatmap(reading.lens_probs, lens_tokens, positions, tr("logit_lens_title"), tr("layer"), tr("probability")),
        "logit_lens", pd.DataFrame([{"layer": l, "position": p, "input_token": positions[p], "predicted": lens_tokens[l][p],
                                     "probability": float(reading.lens_probs[l, p])}
                                    for l in range(reading.lens_probs.shape[0]) for p in range(len(positions))]), key="lens",
    )
    st.caption(tr("logit_lens_explain", n=LENS_POSITIONS))


def surprise(read: Reading) -> None:
    st.subheader(tr("surprise_title"))
    with st.container(key="surprisal"):
        st.metric(tr("perplexity"), f"{prediction.perplexity(read.reading.bits):.1f}")
        st.html(figures.surprisal_html(prediction.character_groups(read.text, read.reading.offsets[1:], read.reading.bits),
                                       tr("bits")))
    st.write(tr("surprise_explain"))


def side_by_side(loaded: LoadedModel, read: Reading) -> None:
    """The same text read by a second bundled decoder: both next-token distributions and both surprisals, side by
    side (SmolLM2 after a Korean sentence offers byte pieces; Gemma offers Korean words)."""
    st.subheader(tr("predict_side_title"))
    others = ["none", *[key for key in DECODERS if key != loaded.info.key]]
    chosen = st.radio(tr("predict_side_with"), others, horizontal=True, format_func=translated("predict_side_"),
                      key=url_state("vs", "none", one_of(others)))  # none by default: a second model costs memory
    if chosen == "none":
        return
    second = current_model(chosen)
    second_reading = compute(_reading, second, second.fingerprint, read.text) if second is not None else None
    if second_reading is None:
        return
    for column, model, reading in zip(st.columns(2), (loaded, second), (read.reading, second_reading)):
        with column:
            probs = prediction.softmax(reading.next_logits)  # (vocab,) at temperature 1: the model's own
            top_ids = np.argsort(-probs)[:SIDE_CANDIDATES]
            labels = [visible(token_label(model.tokenizer, int(i))) for i in top_ids]
            show_figure(figures.next_token_bars(labels, probs[top_ids], np.ones(len(top_ids), dtype=bool),
                                                model.info.key, tr("probability")),
                        f"next_token_{model.info.key}", pd.DataFrame({"token": labels, "probability": probs[top_ids]}),
                        key=f"side_bars_{model.info.key}")
            st.metric(tr("predict_side_tokens_perplexity", tokens=len(reading.token_ids)),
                      f"{prediction.perplexity(reading.bits):.1f}")
            st.html(figures.surprisal_html(prediction.character_groups(read.text, reading.offsets[1:], reading.bits),
                                           tr("bits")))
    st.caption(tr("predict_side_explain"))
