"""Attention views: where each token looks, from one head to every layer, for short and long texts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from explorer import attention, figures, models
from explorer.capture_attention import HEAD_STATS
from explorer.i18n import t
from explorer.labels import token_labels, visible
from explorer.models import LoadedModel
from pages.common import bounded, capture_or_explain, compute, current_model, lang, one_of, show_figure, tr, translated, url_state

WINDOW, GRID_WINDOW, LINES_WINDOW, COMPARE_TOKENS = attention.WINDOW, 40, 32, 40
PARAMS = ("atext", "layer", "head", "start", "role", "focus", "lines")


@st.cache_resource(show_spinner=False, max_entries=8)
def _view(_loaded, fingerprint: str, text: str, layer: int) -> attention.AttentionView:
    """Kept whole (no copy per rerun): changing head, window or focus draws from it without computing."""
    return attention.view(_loaded, text, layer)



def _heads_within(query_heads: int):
    """A URL cast for up to four head numbers, each below `query_heads`."""
    return lambda raw: [head for head in map(int, filter(str.strip, raw.split(","))) if 0 <= head < query_heads][:4]


def _long_table(weights: np.ndarray, names: list[str], offset: int) -> pd.DataFrame:
    """(n, n) weights as one row per (query, key) pair: tokens repeat, so they cannot be column names."""
    queries, keys = np.indices(weights.shape)
    return pd.DataFrame({"query_position": queries.ravel() + offset, "query": [names[i] for i in queries.ravel()],
                         "key_position": keys.ravel() + offset, "key": [names[i] for i in keys.ravel()],
                         "weight": weights.ravel()})


@dataclass
class Shown:
    text: str
    layer: int
    head: object  # "mean" or a head index
    head_label: object  # head -> its label
    view: attention.AttentionView
    start: int  # first token of the window


def inputs(loaded: LoadedModel) -> Shown | None:
    """The text, the layer and head, the window over a long text (None: refused, already explained)."""
    info = loaded.info
    text = st.text_area(tr("attention_text"), key=url_state("atext", tr("attention_sample")), height=90)
    left, right = st.columns(2)
    layer = int(left.slider(tr("layer"), 0, info.layers - 1, key=url_state("layer", 0, bounded(int, 0, info.layers - 1))))
    group = max(1, info.query_heads // max(1, info.kv_heads))
    head_options = ["mean", *range(info.query_heads)]
    head_label = lambda h, lang=lang(): t("head_mean", lang) if h == "mean" else t("head_kv", lang, h=h, g=h // group)  # noqa: E731
    head = right.selectbox(tr("head"), head_options, format_func=head_label,
                           key=url_state("head", "mean", one_of(head_options, lambda v: v if v == "mean" else int(v))))
    if info.kv_heads < info.query_heads:
        st.caption(tr("gqa_note", q=info.query_heads, kv=info.kv_heads, group=group))
    windows = loaded.parts.windows
    if any(windows):  # Gemma 3: five sliding-window layers of every six
        sliding = sum(1 for w in windows if w)
        st.caption(tr("sliding_layer" if windows[layer] else "full_layer", layer=layer, window=windows[layer] or 0,
                      sliding=sliding, full=len(windows) - sliding))
    shown = compute(_view, loaded, loaded.fingerprint, text, layer)
    if shown is None:
        return None
    if shown.dropped_tokens:
        st.warning(tr("truncated", dropped=shown.dropped_tokens))
    start = 0
    if shown.seq > WINDOW:
        start = st.slider(tr("window_start"), 0, shown.seq - WINDOW, key=url_state("start", 0, bounded(int, 0, shown.seq - WINDOW)))
    return Shown(text, layer, head, head_label, shown, start)


def one_head(loaded: LoadedModel, chosen_view: Shown) -> None:
    """The chosen head's pattern (an overview for long texts), every head of the layer, and BertViz-style lines."""
    info, shown, start, head, layer, head_label = (loaded.info, chosen_view.view, chosen_view.start, chosen_view.head,
                                                   chosen_view.layer, chosen_view.head_label)
    seq, labels, pattern = shown.seq, shown.labels, shown.pattern  # pattern: (heads, seq, seq) float16
    chosen = shown.head(head)  # (seq, seq)
    if shown.overview is not None:  # long enough that an overview says more than the tokens themselves
        st.info(tr("long_text_note", n=seq))
        overview = shown.overview.mean(0) if head == "mean" else shown.overview[int(head)]  # (bins, bins)
        window = loaded.parts.windows[layer]
        show_figure(figures.attention_heatmap(overview, shown.bin_labels, shown.bin_labels,
                                              tr("overview_title", bins=len(shown.bin_labels)), tr("query"), tr("key"),
                                              window=window * len(shown.bin_labels) / seq if window else None),
                    f"attention_overview_L{layer}", key="overview")
    stop = min(seq, start + WINDOW)
    window_labels = labels[start:stop]
    focus = st.selectbox(tr("focus_token"), [None, *range(start, stop)], key=url_state("focus", None, one_of(range(start, stop), int)),
                         placeholder=tr("focus_none"),
                         format_func=lambda i, lang=lang(): t("focus_none", lang) if i is None else f"{i}: {labels[i]}")
    if focus is not None:
        top_keys = np.argsort(-chosen[focus].astype(np.float32))[:3]  # (3,) where the chosen token looks most
        st.caption(tr("focus_summary", token=labels[focus], keys=", ".join(f"{labels[k]} ({float(chosen[focus, k]):.0%})" for k in top_keys)))
    show_figure(
        figures.attention_heatmap(attention.window(chosen, start, WINDOW).astype(np.float32), window_labels, window_labels,
                                  tr("one_head_title", layer=layer, head=head_label(head)), tr("query"), tr("key"),
                                  highlight_row=None if focus is None else focus - start,
                                  window=loaded.parts.windows[layer]),
        f"attention_L{layer}_H{head}",
        _long_table(attention.window(chosen, start, WINDOW).astype(np.float32), window_labels, start),
        key="one_head",
    )
    grid = attention.window(pattern, start, GRID_WINDOW).astype(np.float32)  # (heads, w, w)
    in_grid = None if focus is None or focus - start >= GRID_WINDOW else focus - start
    show_figure(figures.heads_grid(grid, [head_label(h) for h in range(info.query_heads)], tr("all_heads_title", layer=layer),
                                   columns=3 if info.query_heads % 3 == 0 else 4, highlight_row=in_grid),
                f"attention_heads_L{layer}", key="grid")
    line_heads = st.multiselect(tr("line_heads"), list(range(info.query_heads)), format_func=head_label,
                                placeholder=tr("line_heads_placeholder"),
                                key=url_state("lines", [] if head == "mean" else [int(head)], _heads_within(info.query_heads)),
                                max_selections=4)
    line_weights = (attention.window(pattern[line_heads], start, LINES_WINDOW) if line_heads
                    else attention.window(chosen, start, LINES_WINDOW)[None]).astype(np.float32)  # (heads, w, w)
    show_figure(figures.head_view(line_weights, labels[start:start + LINES_WINDOW], tr("head_view_title"),
                                  head_names=[head_label(h) for h in line_heads] or None), f"head_view_L{layer}", key="head_view")


def roles(loaded: LoadedModel, chosen_view: Shown) -> None:
    """What every head does (entropy, previous token, first token…) and the attention rollout."""
    shown, start = chosen_view.view, chosen_view.start
    window_labels = shown.labels[start:min(shown.seq, start + WINDOW)]
    seq = shown.seq
    st.subheader(tr("roles_title"))
    stats = shown.head_stats  # (layers, heads, stats)
    role = st.radio(tr("inside_stat"), HEAD_STATS, horizontal=True, format_func=translated("stat_"),
                    key=url_state("role", "previous", one_of(HEAD_STATS)))
    show_figure(figures.layer_head_heatmap(stats[:, :, HEAD_STATS.index(role)], tr("heatmap_title", stat=tr(f"stat_{role}")),
                                           tr("layer"), tr("head"), tr(f"stat_{role}")), f"head_roles_{role}", key="roles")
    if seq <= attention.FULL_LIMIT:
        rolled, rollout_labels = attention.window(shown.rollout, start, WINDOW), window_labels
    else:
        rolled, rollout_labels = shown.rollout, shown.bin_labels
    show_figure(figures.attention_heatmap(rolled, rollout_labels, rollout_labels, tr("rollout_title"), tr("query"), tr("key")),
                "attention_rollout", key="rollout")
    st.caption(tr("rollout_explain"))


def compare(loaded: LoadedModel, chosen_view: Shown) -> None:
    """The same text in the encoder and the decoder: looking both ways against looking back only."""
    info, text, layer = loaded.info, chosen_view.text, chosen_view.layer
    st.subheader(tr("compare_title", layer=layer))
    columns = st.columns(2)
    for column, family, bundled in zip(columns, ("encoder", "decoder"), (models.MINILM, models.SMOLLM2)):
        other = loaded if info.family == family else current_model(bundled)  # the page's own model where it can
        if other is None:
            continue
        key = other.info.key
        other_layer = min(layer, other.info.layers - 1)
        compared = capture_or_explain(other, text, [f"blocks.{other_layer}.attn.pattern"], notify_truncation=False,
                               max_tokens=COMPARE_TOKENS)
        if compared is None:
            continue
        compare_labels = [visible(label) for label in token_labels(compared)]
        with column:
            show_figure(figures.attention_heatmap(compared[f"blocks.{other_layer}.attn.pattern"].astype(np.float32).mean(0),
                                                  compare_labels, compare_labels,
                                                  f"{models.BUNDLED[key].hub_id.split('/')[-1] if key in models.BUNDLED else key} · {tr(f'family_{other.info.family}')}",
                                                  tr("query"), tr("key")), f"compare_{key}", key=f"compare_{key}")
    st.write(tr("compare_explain"))
    st.caption(tr("compare_first_tokens", n=COMPARE_TOKENS))
