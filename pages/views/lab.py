"""Interpretability lab views: attribution, ablation, patching, steering and a break-it table. Sweeps go through the
process's one queue (progress, cancel) and are kept per model, prompts and settings for every session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from explorer import figures, interpret, jobs
from explorer.activations import encode
from explorer.kept import Kept
from explorer.labels import labels_in_text, token_label, visible
from explorer.models import LoadedModel
from pages.common import bounded, compute, one_of, show_figure, tr, translated, url_state
from pages.views import jobs as jobs_view

TOOLS = ("attribute", "ablate", "patch", "steer", "break")
PARAMS = ("tool", "lprompt", "ltarget", "dlayer", "apart", "alayer", "ahead", "amode", "clean", "corrupt", "ppos",
          "spos", "sneg", "slayer", "strength", "sprompt")
SWEEPS = Kept(64)  # (kind, fingerprint, inputs…) -> result, shared by every session
BREAK_TEXT_TOKENS = 128


def _sweep(kind: str, key: tuple, total: int, run, draw) -> None:
    """A kept result drawn at once; else a start button, and the queue's panel until the result arrives. The result is
    kept under the key the sweep started with: a prompt edited meanwhile gets its own sweep, not this one."""
    found = SWEEPS.get(key)
    if found is None:
        def work(job: jobs.Job):
            return run(lambda done, total_rows: job.report(done))

        start = st.empty()
        jobs_view.start_button(tr("lab_run_sweep"), kind, total, work, key, container=start)
        jobs_view.panel(kind, lambda job: SWEEPS.put(job.inputs, job.result))
        found = SWEEPS.get(key)
        if found is not None:
            start.empty()  # finished during this run
    if found is not None:
        draw(found)


def tool() -> str:
    return st.segmented_control(tr("lab_tool"), TOOLS, format_func=translated("lab_tool_"), required=True,
                                key=url_state("tool", "attribute", one_of(TOOLS))) or "attribute"


def prompt(loaded: LoadedModel) -> tuple[list[int], int] | None:
    """The prompt and the target token (the top prediction unless the learner names one)."""
    left, right = st.columns([3, 1])
    text = left.text_input(tr("lab_prompt"), key=url_state("lprompt", tr("lab_prompt_default")))
    target = right.text_input(tr("lab_target"), key=url_state("ltarget", ""), help=tr("lab_target_help"))
    ids = compute(interpret.prompt_ids, loaded, text)
    if ids is None:
        return None
    chosen = compute(interpret.target_id, loaded, ids, target)
    return None if chosen is None else (ids, chosen)


def _label(loaded: LoadedModel, token: int) -> str:
    return token_label(loaded.tokenizer, token)


@st.cache_data(show_spinner=False, max_entries=64)
def _attribution(_loaded, fingerprint: str, ids: tuple[int, ...], target: int) -> interpret.Attribution:
    return interpret.attribute(_loaded, list(ids), target)


def attribution(loaded: LoadedModel, ids: list[int], target: int) -> None:
    """Each layer's attention and MLP push on the target's logit, the check that they add up, and the heads."""
    st.subheader(tr("lab_attribute_title"))
    found = compute(_attribution, loaded, loaded.fingerprint, tuple(ids), target)
    if found is None:
        return
    token = _label(loaded, target)
    columns = st.columns(4)
    columns[0].metric(tr("lab_target_metric"), visible(token))
    columns[1].metric(tr("probability"), f"{found.probability:.3f}")
    columns[2].metric(tr("lab_logit"), f"{found.logit:.3f}")
    columns[3].metric(tr("lab_sum"), f"{found.total:.3f}", f"{found.total - found.logit:+.1e}", delta_color="off",
                      delta_arrow="off")
    layers = loaded.parts.layers
    attention, mlp = found.contributions[1::2], found.contributions[2::2]
    show_figure(figures.layer_contributions(attention, mlp, float(found.contributions[0]),
                                            tr("lab_attribute_figure", token=token), tr("layer"), tr("lab_push"),
                                            tr("lab_attention"), tr("lab_mlp"), tr("lab_embedding")),
                "direct_logit_attribution",
                pd.DataFrame({"component": found.components, "logit_push": found.contributions}), key="lab_dla")
    st.caption(tr("lab_attribute_explain", scale=found.scale))
    heads_per_group = loaded.parts.query_heads // max(1, loaded.parts.kv_heads)
    layer = st.slider(tr("layer"), 0, layers - 1, key=url_state("dlayer", layers - 1, bounded(int, 0, layers - 1)))
    labels = [f"{tr('head')} {h} · KV {h // heads_per_group}" for h in range(loaded.parts.query_heads)]
    show_figure(figures.before_after_bars(labels, list(found.heads[layer]), None,
                                          tr("lab_heads_figure", layer=layer, token=token), tr("lab_push"), "",
                                          tr("lab_push"), tokens=False),
                "head_attribution", pd.DataFrame(found.heads, columns=labels).rename_axis("layer").reset_index(),
                key="lab_dla_heads")
    st.caption(tr("lab_heads_explain", query=loaded.parts.query_heads, kv=loaded.parts.kv_heads, group=heads_per_group))


@st.cache_data(show_spinner=False, max_entries=64)
def _ablation(_loaded, fingerprint: str, ids: tuple[int, ...], target: int, ablation: interpret.Ablation):
    return interpret.ablate(_loaded, list(ids), target, ablation)


def ablation(loaded: LoadedModel, ids: list[int], target: int) -> None:
    """Knock one part out and see the top five move; then every head and every layer as heatmaps."""
    st.subheader(tr("lab_ablate_title"))
    parts = loaded.parts
    columns = st.columns(4)
    part = columns[0].selectbox(tr("lab_part"), interpret.PARTS, format_func=translated("lab_part_"),
                                key=url_state("apart", "head", one_of(interpret.PARTS)))
    layer = columns[1].number_input(tr("layer"), 0, parts.layers - 1, key=url_state("alayer", 0, bounded(int, 0, parts.layers - 1)))
    head = columns[2].number_input(tr("head"), 0, parts.query_heads - 1, key=url_state("ahead", 0, bounded(int, 0, parts.query_heads - 1)),
                                   disabled=part != "head")
    mode = columns[3].radio(tr("lab_mode"), interpret.ABLATIONS, format_func=translated("lab_mode_"), horizontal=True,
                            key=url_state("amode", "zero", one_of(interpret.ABLATIONS)))
    chosen = interpret.Ablation(part, int(layer), int(head), mode)
    found = compute(_ablation, loaded, loaded.fingerprint, tuple(ids), target, chosen)
    if found is not None:
        token = _label(loaded, target)
        st.metric(tr("lab_target_probability", token=token), f"{found.target_after:.4f}",
                  f"{found.target_after - found.target_before:+.4f}")
        before, after = dict(found.before), dict(found.after)
        tokens = [*before, *[t for t in after if t not in before]]
        labels = [_label(loaded, t) for t in tokens]
        show_figure(figures.before_after_bars(labels, [before.get(t, 0.0) for t in tokens],
                                              [after.get(t, 0.0) for t in tokens], tr("lab_ablate_figure"),
                                              tr("lab_untouched"), tr("lab_ablated"), tr("probability")),
                    "ablation_top5", pd.DataFrame({"token": labels, "before": [before.get(t, 0.0) for t in tokens],
                                                   "after": [after.get(t, 0.0) for t in tokens]}), key="lab_ablate_bars")
    st.caption(tr("lab_ablate_explain"))
    st.markdown(f"**{tr('lab_sweep_title')}**")
    rows = parts.layers * parts.query_heads
    key = ("lab_heads", loaded.fingerprint, tuple(ids), target, mode)

    def run(progress):
        heads = interpret.head_sweep(loaded, ids, target, mode, progress)
        return heads, interpret.part_sweep(loaded, ids, target, mode)

    def draw(found):
        heads, whole = found
        token = _label(loaded, target)
        show_figure(figures.layer_head_heatmap(heads, tr("lab_head_sweep_figure", token=token, mode=tr(f"lab_mode_{mode}")),
                                               tr("layer"), tr("head"), tr("probability")),
                    "head_ablation_sweep", pd.DataFrame(heads).rename_axis("layer").reset_index(), key="lab_head_sweep")
        names = [tr(f"lab_part_{p}") for p in ("layer", "attn", "mlp")]
        show_figure(figures.matrix_heatmap(whole, names, tr("lab_part_sweep_figure", token=token), tr("layer"), "",
                                           column_labels=[str(i) for i in range(parts.layers)], colorscale="Viridis",
                                           symmetric=False),
                    "part_ablation_sweep", pd.DataFrame(whole.T, columns=["layer", "attn", "mlp"]), key="lab_part_sweep")
        st.caption(tr("lab_sweep_explain"))

    _sweep("lab_heads", key, rows, run, draw)


def patching(loaded: LoadedModel) -> None:
    """Clean and corrupted prompts of the same length; the residual stream patched at each layer × position; then
    each head's output at one position."""
    st.subheader(tr("lab_patch_title"))
    left, right = st.columns(2)
    clean = left.text_input(tr("lab_clean"), key=url_state("clean", tr("lab_clean_default")))
    corrupt = right.text_input(tr("lab_corrupt"), key=url_state("corrupt", tr("lab_corrupt_default")))
    pair = compute(interpret.same_length, loaded, clean, corrupt)
    if pair is None:
        return
    clean_ids, corrupt_ids = pair
    _, tokens, offsets, _ = encode(loaded, clean, None)
    labels = [f"{i}: {visible(label)}" for i, label in enumerate(labels_in_text(clean, tokens, offsets.tolist()))]
    st.caption(tr("lab_patch_explain"))
    key = ("lab_patch", loaded.fingerprint, tuple(clean_ids), tuple(corrupt_ids))

    def draw(found: interpret.PatchingResult):
        st.write(tr("lab_patch_answers", clean=visible(_label(loaded, found.clean_token)),
                    corrupt=visible(_label(loaded, found.corrupt_token)),
                    clean_gap=found.clean_difference, corrupt_gap=found.corrupt_difference))
        rows = [f"{tr('layer')} {i}" for i in range(loaded.parts.layers)] + [tr("lab_final_residual")]
        show_figure(figures.matrix_heatmap(found.recovered, rows, tr("lab_patch_figure"), tr("position"), tr("lab_residual_at"),
                                           column_labels=labels, colorscale="RdBu"),
                    "residual_patching", pd.DataFrame(found.recovered, columns=labels, index=rows).reset_index(),
                    key="lab_patch_map")

    _sweep("lab_patch", key, (loaded.parts.layers + 1) * len(clean_ids),
           lambda progress: interpret.patch_residual_sweep(loaded, clean_ids, corrupt_ids, progress), draw)
    if key not in SWEEPS:
        return
    differs = [i for i, (a, b) in enumerate(zip(clean_ids, corrupt_ids)) if a != b] or [len(clean_ids) - 1]
    position = st.selectbox(tr("lab_head_position"), range(len(clean_ids)), format_func=lambda i: labels[i],
                            key=url_state("ppos", len(clean_ids) - 1, bounded(int, 0, len(clean_ids) - 1)))
    st.caption(tr("lab_head_position_help", first=labels[differs[0]]))
    head_key = ("lab_patch_heads", loaded.fingerprint, tuple(clean_ids), tuple(corrupt_ids), int(position))

    def draw_heads(found: interpret.PatchingResult):
        show_figure(figures.layer_head_heatmap(found.recovered, tr("lab_patch_heads_figure", position=labels[position]),
                                               tr("layer"), tr("head"), tr("lab_recovered")),
                    "head_patching", pd.DataFrame(found.recovered).rename_axis("layer").reset_index(), key="lab_patch_heads")

    _sweep("lab_patch_heads", head_key, loaded.parts.layers * loaded.parts.query_heads,
           lambda progress: interpret.patch_head_sweep(loaded, clean_ids, corrupt_ids, int(position), progress), draw_heads)


@st.cache_data(show_spinner=False, max_entries=32)
def _direction(_loaded, fingerprint: str, positive: tuple[str, ...], negative: tuple[str, ...], layer: int):
    direction = interpret.steering_direction(_loaded, list(positive), list(negative), layer)
    return direction, interpret.direction_vocabulary(_loaded, direction)


@st.cache_data(show_spinner=False, max_entries=64)
def _steered(_loaded, fingerprint: str, ids: tuple[int, ...], layer: int, direction: tuple[float, ...],
             strength: float, steps: int) -> str:
    added = interpret.steered_generation(_loaded, list(ids), layer, np.array(direction, dtype=np.float32), strength, steps)
    return _loaded.tokenizer.decode(added).rstrip("\ufffd")


def steering(loaded: LoadedModel) -> None:
    """A direction from two prompt sets, added with a strength during greedy generation; the vocabulary at its ends."""
    st.subheader(tr("lab_steer_title"))
    left, right = st.columns(2)
    positive = left.text_area(tr("lab_positive"), key=url_state("spos", tr("lab_positive_default")), height=120)
    negative = right.text_area(tr("lab_negative"), key=url_state("sneg", tr("lab_negative_default")), height=120)
    layers = loaded.parts.layers
    left, right = st.columns(2)
    layer = left.slider(tr("layer"), 0, layers - 1, key=url_state("slayer", layers // 3, bounded(int, 0, layers - 1)))
    strength = right.slider(tr("lab_strength"), -12.0, 12.0, step=0.5, key=url_state("strength", 4.0, bounded(float, -12.0, 12.0)))
    text = st.text_input(tr("lab_steer_prompt"), key=url_state("sprompt", tr("lab_steer_prompt_default")))
    found = compute(_direction, loaded, loaded.fingerprint, tuple(positive.splitlines()), tuple(negative.splitlines()), layer)
    ids = compute(interpret.prompt_ids, loaded, text)
    if found is None or ids is None:
        return
    direction, (ends, scores) = found
    vector = tuple(float(x) for x in direction)
    plain = compute(_steered, loaded, loaded.fingerprint, tuple(ids), layer, vector, 0.0, 24)
    steered = compute(_steered, loaded, loaded.fingerprint, tuple(ids), layer, vector, float(strength), 24)
    if plain is None or steered is None:
        return
    left, right = st.columns(2)
    with left.container(key="lab_plain"):
        st.markdown(f"**{tr('lab_plain')}**")
        st.html(figures.plain_text_html(text, plain))
    with right.container(key="lab_steered"):
        st.markdown(f"**{tr('lab_steered', strength=strength)}**")
        st.html(figures.plain_text_html(text, steered))
    labels = [_label(loaded, t) for t in ends]
    show_figure(figures.before_after_bars(labels, list(scores), None, tr("lab_vocabulary_figure"), tr("lab_alignment"), "",
                                          tr("lab_alignment")),
                "steering_vocabulary", pd.DataFrame({"token": labels, "score": scores}), key="lab_vocabulary")
    st.caption(tr("lab_steer_explain", norm=float(np.linalg.norm(direction))))


def break_it(loaded: LoadedModel, text: str) -> None:
    """Perplexity of a bundled text with each layer removed in turn, computed live."""
    st.subheader(tr("lab_break_title"))
    st.write(tr("lab_break_intro", tokens=BREAK_TEXT_TOKENS))
    key = ("lab_layers", loaded.fingerprint, BREAK_TEXT_TOKENS)

    def draw(found: np.ndarray):
        layers = list(range(len(found) - 1))
        show_figure(figures.before_after_bars([str(i) for i in layers], list(found[1:]), None, tr("lab_break_figure", base=found[0]),
                                              tr("lab_perplexity"), "", tr("lab_perplexity"), log_y=True, tokens=False),
                    "layer_removal", pd.DataFrame({"removed_layer": ["none", *layers], "perplexity": found}), key="lab_break")
        order = np.argsort(-found[1:])[:5]
        st.dataframe(pd.DataFrame({tr("lab_removed_layer"): order, tr("lab_perplexity"): found[1:][order].round(1),
                                   tr("lab_times"): (found[1:][order] / found[0]).round(1)}), hide_index=True)
        st.caption(tr("lab_break_explain"))

    _sweep("lab_layers", key, loaded.parts.layers + 1,
           lambda progress: interpret.layer_removal(loaded, text, BREAK_TEXT_TOKENS, progress), draw)
