"""Attention: where each token looks, from one head to every layer, for short and long texts."""

import numpy as np
import pandas as pd
import streamlit as st

from explorer import activations, attention, figures, models
from explorer.capture_attention import HEAD_STATS
from explorer.i18n import t
from pages.common import (page, current_model, lang, require_model, translated, run_capture, show_figure,
                          tr, url_state)

WINDOW, GRID_WINDOW, LINES_WINDOW, COMPARE_TOKENS = 64, 40, 32, 40
PARAMS = ("atext", "layer", "head", "start", "role", "focus", "lines")
page(*PARAMS)



def _int_list(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",") if part.strip()]


def _long_table(weights: np.ndarray, token_labels: list[str], offset: int) -> pd.DataFrame:
    """(n, n) weights as one row per (query, key) pair: tokens repeat, so they cannot be column names."""
    queries, keys = np.indices(weights.shape)
    return pd.DataFrame({"query_position": queries.ravel() + offset, "query": [token_labels[i] for i in queries.ravel()],
                         "key_position": keys.ravel() + offset, "key": [token_labels[i] for i in keys.ravel()],
                         "weight": weights.ravel()})


st.title(tr("nav_attention"))
st.write(tr("attention_intro"))
loaded = require_model()
info = loaded.info
text = st.text_area(tr("attention_text"), key=url_state("atext", tr("attention_sample")), height=90)
left, right = st.columns(2)
layer = min(int(left.slider(tr("layer"), 0, info.layers - 1, key=url_state("layer", 0, int))), info.layers - 1)
group = max(1, info.query_heads // max(1, info.kv_heads))
head_options = ["mean", *range(info.query_heads)]
head_label = lambda h, lang=lang(): t("head_mean", lang) if h == "mean" else t("head_kv", lang, h=h, g=h // group)  # noqa: E731
head = right.selectbox(tr("head"), head_options, format_func=head_label,
                       key=url_state("head", "mean", lambda v: v if v == "mean" else int(v)))
if info.kv_heads < info.query_heads:
    st.caption(tr("gqa_note", q=info.query_heads, kv=info.kv_heads, group=group))

try:
    seq = len(activations.tokenize(loaded, text, attention.MAX_TOKENS)[0])
except activations.CaptureError:
    seq = 0
result = run_capture(loaded, text, attention.names_for_view(seq, layer), max_tokens=attention.MAX_TOKENS,
                     pooled_size=attention.OVERVIEW_BINS)
if result is None:
    st.stop()
seq = len(result.token_ids)
labels = [figures.visible(label) for label in activations.token_labels(result)]
pattern = result[f"blocks.{layer}.attn.pattern"]  # (heads, seq, seq) float16
chosen = pattern.mean(0, dtype=np.float32) if head == "mean" else pattern[int(head)]  # (seq, seq)

start = 0
if seq > WINDOW:
    start = st.slider(tr("window_start"), 0, seq - WINDOW, key=url_state("start", 0, int))
if seq > 2 * WINDOW:  # long enough that an overview says more than the tokens themselves
    st.info(tr("long_text_note", n=seq))
    pooled = attention.pooled_to_transitions(result[f"blocks.{layer}.attn.pooled"], seq)  # (heads, bins, bins)
    overview = pooled.mean(0) if head == "mean" else pooled[int(head)]
    bins = overview.shape[-1]
    bin_labels = [f"{i * seq // bins}–{(i + 1) * seq // bins - 1}" for i in range(bins)]
    show_figure(figures.attention_heatmap(overview, bin_labels, bin_labels, tr("overview_title", bins=bins),
                                          tr("query"), tr("key")), f"attention_overview_L{layer}", key="overview")
stop = min(seq, start + WINDOW)
window_labels = labels[start:stop]
focus = st.selectbox(tr("focus_token"), [None, *range(start, stop)], key=url_state("focus", None, int),
                     format_func=lambda i, lang=lang(): t("focus_none", lang) if i is None else f"{i}: {labels[i]}")
if focus is not None:
    top_keys = np.argsort(-chosen[focus].astype(np.float32))[:3]  # (3,) where the chosen token looks most
    st.caption(tr("focus_summary", token=labels[focus], keys=", ".join(f"{labels[k]} ({float(chosen[focus, k]):.0%})" for k in top_keys)))
show_figure(
    figures.attention_heatmap(attention.window(chosen, start, WINDOW).astype(np.float32), window_labels, window_labels,
                              tr("one_head_title", layer=layer, head=head_label(head)), tr("query"), tr("key"),
                              highlight_row=None if focus is None else focus - start),
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
                            key=url_state("lines", [] if head == "mean" else [int(head)], _int_list), max_selections=4)
line_weights = (attention.window(pattern[line_heads], start, LINES_WINDOW) if line_heads
                else attention.window(chosen, start, LINES_WINDOW)[None]).astype(np.float32)  # (heads, w, w)
show_figure(figures.head_view(line_weights, labels[start:start + LINES_WINDOW], tr("head_view_title"),
                              head_names=[head_label(h) for h in line_heads] or None), f"head_view_L{layer}", key="head_view")

st.subheader(tr("roles_title"))
stats = activations.head_stats_table(result)  # (layers, heads, stats)
role = st.radio(tr("inside_stat"), HEAD_STATS, horizontal=True, format_func=translated("stat_"),
                key=url_state("role", "previous"))
show_figure(figures.layer_head_heatmap(stats[:, :, HEAD_STATS.index(role)], tr("heatmap_title", stat=tr(f"stat_{role}")),
                                       tr("layer"), tr("head"), tr(f"stat_{role}")), f"head_roles_{role}", key="roles")
rollouts = st.session_state.setdefault("rollouts", {})  # rollout ignores layer and head: compute it once per text
rollout_key = (info.key, loaded.fingerprint, text)
if rollout_key not in rollouts:
    if seq <= attention.FULL_LIMIT:
        means = np.stack([result[f"blocks.{i}.attn.pattern"].mean(0, dtype=np.float32) for i in range(info.layers)])
    else:  # long texts: rollout over the pooled overview's bins
        means = np.stack([attention.pooled_to_transitions(result[f"blocks.{i}.attn.pooled"], seq).mean(0)
                          for i in range(info.layers)])
    rollouts.clear()
    rollouts[rollout_key] = attention.rollout(means)  # (seq, seq) or (bins, bins)
rolled = rollouts[rollout_key]
if seq <= attention.FULL_LIMIT:
    rolled, rollout_labels = attention.window(rolled, start, WINDOW), window_labels
else:
    rollout_labels = bin_labels
show_figure(figures.attention_heatmap(rolled, rollout_labels, rollout_labels, tr("rollout_title"), tr("query"), tr("key")),
            "attention_rollout", key="rollout")
st.caption(tr("rollout_explain"))

st.subheader(tr("compare_title", layer=layer))
columns = st.columns(2)
for column, key in zip(columns, (models.MINILM, models.SMOLLM2)):
    other = loaded if key == info.key else current_model(key)
    if other is None:
        continue
    other_layer = min(layer, other.info.layers - 1)
    compared = run_capture(other, text, [f"blocks.{other_layer}.attn.pattern"], notify_truncation=False,
                           max_tokens=COMPARE_TOKENS)
    if compared is None:
        continue
    compare_labels = [figures.visible(label) for label in activations.token_labels(compared)]
    with column:
        show_figure(figures.attention_heatmap(compared[f"blocks.{other_layer}.attn.pattern"].astype(np.float32).mean(0),
                                              compare_labels, compare_labels,
                                              f"{models.BUNDLED[key].hub_id.split('/')[-1]} · {tr(f'family_{other.info.family}')}",
                                              tr("query"), tr("key")), f"compare_{key}", key=f"compare_{key}")
st.write(tr("compare_explain"))
st.caption(tr("compare_first_tokens", n=COMPARE_TOKENS))
