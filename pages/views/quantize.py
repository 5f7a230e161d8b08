"""Quantization views: the bundled file's own storage, memory per scheme, weights and their grid, what the next
token loses, and speed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer import activations, figures, models, quantize, warmup
from explorer.i18n import t
from explorer.memory import BUDGET
from explorer.models import LoadedModel
from pages.common import as_bool, compute, one_of, show_figure, tr, translated, url_state

PARAMS = ("group", "sym", "matrix", "grid", "qtext")

HISTORY = json.loads((Path(__file__).resolve().parents[2] / "assets" / "history.json").read_text(encoding="utf-8"))
SAMPLE = (Path(__file__).resolve().parents[2] / "assets" / "sample_long.txt").read_text(encoding="utf-8")
COMPARE_TOKENS = 256  # the learner's text is compared on its first 256 tokens (a long paste: a notice, kept as typed)
PERPLEXITY_TOKENS = 512  # the page's perplexity reads this many tokens of the bundled text (the bench reads 2,000)
GROUP = 32  # the page's group size until the learner picks another


def headed(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its column names in the learner's language (the CSV export keeps the plain names)."""
    return table.rename(columns=lambda column: tr(f"quant_column_{column}"))


def show_table(place, table: pd.DataFrame) -> None:
    """A table of schemes, its name columns wide enough to read whole ("int4_group-g32-sym", "torchao (가중치 전용)"
    were cut)."""
    names = [tr("quant_column_scheme"), tr("quant_column_library")]
    place.dataframe(table, hide_index=True, width="stretch",
                    column_config={name: st.column_config.TextColumn(name, width=150) for name in names})  # px


def schemes(group: int, symmetric: bool) -> list[quantize.Scheme]:
    return [quantize.Scheme(name, group, symmetric) for name in quantize.SCHEMES]


def controls() -> tuple[int, bool]:
    left, right = st.columns(2)
    group = left.select_slider(tr("quant_group"), quantize.GROUP_SIZES,
                               key=url_state("group", GROUP, one_of(quantize.GROUP_SIZES, int)), help=tr("quant_group_help"))
    symmetric = right.toggle(tr("quant_symmetric"), key=url_state("sym", True, as_bool),
                             help=tr("quant_symmetric_help"))
    return int(group), bool(symmetric)


def caveat(loaded: LoadedModel) -> None:
    """What a bundled GGUF model's "fp32" really is (SmolLM2, Gemma 3), from the file's own tensor types."""
    rows = quantize.gguf_types(loaded.info.key)
    if not rows:
        st.caption(tr("quant_true_fp32", model=loaded.info.key))
        return
    st.warning(tr("quant_gguf_caveat", model=loaded.info.key, types=", ".join(r["type"] for r in rows)), icon="ℹ️")
    if loaded.info.block_dtype:
        st.info(tr("quant_stored_bf16", model=loaded.info.key), icon="ℹ️")
    st.dataframe(headed(pd.DataFrame(rows)), hide_index=True, width="stretch")


def _survey_key(loaded: LoadedModel, chosen: list[quantize.Scheme], sample: str) -> tuple:
    """Kept for the process (warmup.once): a few per model (group sizes × symmetry × the two sample texts)."""
    return "quantize_survey", loaded.info.key, loaded.fingerprint, tuple(chosen), sample


def warm_up(language: str = "ko") -> None:
    """The page's tables for a new visitor in `language` (the language's default model, the default group size and
    symmetry), measured into the page's store: the same for every visitor, so the app does it at start."""
    with BUDGET.run():
        loaded, chosen, sample = models.shared(models.DEFAULT_MODEL[language]), schemes(GROUP, True), t("predict_sample", language)
        warmup.once(_survey_key(loaded, chosen, sample),
                    lambda: quantize.survey(loaded, chosen, sample, COMPARE_TOKENS, SAMPLE, PERPLEXITY_TOKENS))


def surveyed(loaded: LoadedModel, chosen: list[quantize.Scheme],
             partial=lambda done: None) -> list[quantize.Surveyed] | None:
    """Each scheme's copy built once and measured for every table of the page, the first time behind a progress bar
    and `partial(those measured so far)` (the same for every visitor: kept for the process)."""
    sample = tr("predict_sample")
    bars = []  # the progress bar, drawn only by the run that measures (one that finds the result or waits for another's draws none)

    def report(done: list[quantize.Surveyed]) -> None:
        bars[0].progress(len(done) / len(chosen), text=tr("quant_surveying", done=len(done), n=len(chosen)))
        partial(done)

    def measure() -> list[quantize.Surveyed]:
        bars.append(st.progress(0.0, text=tr("quant_surveying", done=0, n=len(chosen))))
        return quantize.survey(loaded, chosen, sample, COMPARE_TOKENS, SAMPLE, PERPLEXITY_TOKENS, report=report)

    key = _survey_key(loaded, chosen, sample)
    waiting = st.empty()
    if warmup.pending(key):  # the warm-up at start (or another visitor) is measuring this very survey: wait for it
        waiting.info(tr("quant_measured_elsewhere"))
    found = compute(warmup.once, key, measure)
    waiting.empty()
    for bar in bars:
        bar.empty()
    return found


def _sizes(found: list[quantize.Surveyed]) -> pd.DataFrame:
    return headed(pd.DataFrame([dict(scheme=c.scheme, library=tr(f"quant_library_{c.library}"),
                                     bytes_per_parameter=round(c.matrix_bytes / c.matrix_parameters, 3),
                                     matrices_mb=round(c.matrix_bytes / 2**20, 1), packed_mb=round(c.packed_bytes / 2**20, 1),
                                     rest_mb=round(c.other_bytes / 2**20, 1), build_seconds=round(c.seconds, 2))
                                for c in (s.facts for s in found)]))


def memory(loaded: LoadedModel, chosen: list[quantize.Scheme]) -> None:
    """Bytes per parameter and size of each scheme's copy, measured from the stored tensors (the copies built one at
    a time under the memory budget), and the arithmetic for the models in the history chart."""
    st.subheader(tr("quant_memory_title"))
    table = st.empty()  # each scheme's row as soon as its copy is measured (Gemma: ~5 s a scheme on 2 cores)
    found = surveyed(loaded, chosen, partial=lambda done: show_table(table, _sizes(done)))
    if found is None:
        return
    show_table(table, _sizes(found))
    st.caption(tr("quant_memory_explain"))
    sizes = [(s["name"], s["parameters"]) for s in HISTORY["sizes"]]
    arithmetic = pd.DataFrame([{tr("quant_column_model"): name, tr("quant_column_parameters"): f"{parameters:,}",
                                **{tr("quant_column_gb", bits=bits): round(parameters * bits / 8 / 1e9, 1)
                                   for bits in (32, 16, 8, 4)}} for name, parameters in sizes])
    st.dataframe(arithmetic, hide_index=True, width="stretch")
    st.caption(tr("quant_arithmetic_explain"))


def weights(loaded: LoadedModel, chosen: list[quantize.Scheme]) -> None:
    """A matrix's histogram with the grid of the copy the page runs over it, its channels' largest weights, and
    every matrix's error in each scheme's copy."""
    st.subheader(tr("quant_weights_title"))
    matrices = quantize.block_matrices(loaded.model, loaded.parts.blocks)
    names = [name for name, _ in matrices]
    name = st.selectbox(tr("quant_matrix"), names, key=url_state("matrix", names[0], one_of(names)))
    weight = quantize.matrix_weight(dict(matrices)[name])  # (out, in)
    grids = [s.name for s in chosen if s.name in ("int8_tensor", "int4_group")]
    grid_scheme = st.radio(tr("quant_grid"), grids, horizontal=True, format_func=translated("quant_scheme_"),
                           key=url_state("grid", "int4_group", one_of(grids)))
    scheme = next(s for s in chosen if s.name == grid_scheme)
    levels = compute(quantize.grid_of, loaded, scheme, name)
    if levels is None:
        return
    show_figure(figures.weight_histogram(weight.flatten().numpy(), levels, tr("quant_histogram_title", matrix=name), tr("quant_weight"),
                                         tr("quant_count"), tr("quant_levels")),
                "weight_histogram", pd.DataFrame({"level": levels}), key="quant_histogram")
    st.caption(tr(f"quant_grid_explain_{grid_scheme}", group=scheme.group_size))
    channel_max = weight.abs().amax(dim=0).numpy()  # (in,) the largest weight reading each input channel
    show_figure(figures.before_after_bars([str(i) for i in range(len(channel_max))], list(channel_max), None,
                                          tr("quant_outliers_title"), tr("quant_weight"), "", tr("quant_abs_max")),
                "outlier_channels", pd.DataFrame({"channel": range(len(channel_max)), "max_abs": channel_max}),
                key="quant_outliers")
    st.caption(tr("quant_outliers_explain", ratio=float(channel_max.max() / np.median(channel_max))))
    keys = [s.key for s in chosen]
    found = surveyed(loaded, chosen)
    if found is not None:
        matrix_names, errors = names, np.array([s.errors for s in found])  # (schemes, matrices)
        show_figure(figures.matrix_heatmap(errors, keys, tr("quant_error_title"), tr("quant_matrix"),
                                           tr("quant_scheme"), column_labels=matrix_names, colorscale="Viridis",
                                           symmetric=False),
                    "quant_errors", pd.DataFrame(errors.T, columns=keys).assign(matrix=matrix_names),
                    key="quant_errors")


@st.cache_data(show_spinner=False, max_entries=32)
def _behaviour(_loaded, fingerprint: str, chosen: tuple[quantize.Scheme, ...], text: str) -> list[quantize.Behaviour]:
    return quantize.behaviour(_loaded, list(chosen), text, COMPARE_TOKENS, SAMPLE, PERPLEXITY_TOKENS)


def behaviour(loaded: LoadedModel, chosen: list[quantize.Scheme]) -> None:
    st.subheader(tr("quant_behaviour_title"))
    text = st.text_area(tr("quant_text"), key=url_state("qtext", tr("predict_sample")), height=80)
    if text == tr("predict_sample"):  # the page's own sample: measured with the rest of the page
        found = surveyed(loaded, chosen)
        rows = None if found is None else [s.behaviour for s in found]
    else:
        rows = compute(_behaviour, loaded, loaded.fingerprint, tuple(chosen), text)
    if rows is None:
        return
    table = pd.DataFrame([dataclasses.asdict(row) for row in rows]).dropna(axis=1, how="all")
    dropped = activations.encode(loaded, text, COMPARE_TOKENS)[3]
    if dropped and loaded.info.family == "decoder":
        st.warning(tr("truncated", dropped=dropped))
    with st.container(key="quant_behaviour"):
        show_table(st, headed(table))
    st.caption(tr("quant_behaviour_explain_decoder" if loaded.info.family == "decoder" else "quant_behaviour_explain_encoder",
                  tokens=PERPLEXITY_TOKENS))


def speed(loaded: LoadedModel, chosen: list[quantize.Scheme]) -> None:
    st.subheader(tr("quant_speed_title"))
    found = surveyed(loaded, chosen)
    if found is None:
        return
    seconds = [s.seconds for s in found]
    keys = [s.key for s in chosen]
    show_figure(figures.before_after_bars(keys, [s * 1000 for s in seconds], None, tr("quant_speed_figure"),
                                          tr("quant_ms"), "", tr("quant_ms")),
                "quant_speed", pd.DataFrame({"scheme": keys, "seconds_per_forward": seconds}), key="quant_speed")
    st.caption(tr("quant_speed_explain"))
