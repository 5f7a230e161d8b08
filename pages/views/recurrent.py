"""RNN vs Transformer views: two small byte-level models trained here, side by side, measured live."""

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from explorer import figures, recurrent
from explorer.labels import byte_labels, readable_bytes, visible
from explorer.models import device_of
from pages.common import bounded, one_of, show_figure, tr, translated, url_state, working

PARAMS = ("rtext", "gap", "task", "steps")
CACHE_LENGTHS = (16, 64, 256, 1024, 4096, 16384)
LENGTHS, ATTENTION_LENGTHS = recurrent.LENGTHS, recurrent.ATTENTION_LENGTHS


def pair():
    """The two shipped models and their training record, or None (the reason shown)."""
    try:
        return recurrent.shipped_pair()
    except (OSError, ValueError, KeyError) as error:
        st.error(tr("rnn_no_weights", detail=str(error)))
        return None


def pair_table(models) -> None:
    """The two models, their size and held-out loss."""
    rnn, transformer, record = models
    GRU, TRANSFORMER = tr("rnn_name_gru"), tr("rnn_name_transformer")  # names shown in legends, in the page's language
    rows = []
    for name, model, entry in ((GRU, rnn, record["gru"]), (TRANSFORMER, transformer, record["transformer"])):
        rows.append({tr("rnn_model"): name, tr("rnn_parameters"): f"{recurrent.parameters(model):,}",
                     tr("rnn_held_out"): f"{entry['held_out_loss']:.3f}", tr("rnn_unigram"): f"{record['unigram_loss']:.3f}",
                     tr("rnn_train_seconds"): f"{entry['seconds']:.0f}"})
    st.table(pd.DataFrame(rows))
    st.caption(tr("rnn_pair_explain", steps=record["config"]["steps"], seed=record["config"]["seed"],
                    warmup=record["config"]["recall_warmup"]))


def same_input(models) -> None:
    """The same bytes through both: the next-byte distributions side by side."""
    rnn, transformer, record = models
    GRU, TRANSFORMER = tr("rnn_name_gru"), tr("rnn_name_transformer")  # names shown in legends, in the page's language
    st.header(tr("rnn_same_input"))
    text = st.text_area(tr("rnn_text"), key=url_state("rtext", tr("rnn_sample")), height=70)
    if not text.strip():
        st.warning(tr("error_empty_text"))
    else:
        data = text.encode("utf-8")[: transformer.max_len]
        if len(data) < len(text.encode("utf-8")):
            st.info(tr("rnn_text_cut", shown=len(data), total=len(text.encode("utf-8"))))
        labels = byte_labels(text, len(data))
        left, right = st.columns(2)
        with left:
            states = recurrent.rnn_states(rnn, text, len(data))
            show_figure(figures.matrix_heatmap(states, labels, tr("rnn_states_title", width=states.shape[1]), tr("rnn_unit"), tr("rnn_byte")),
                        "rnn_states", key="rnn_states")
        with right:
            pattern = recurrent.transformer_attention(transformer, text)
            show_figure(figures.matrix_heatmap(pattern, labels, tr("rnn_attention_title"), tr("rnn_byte"), tr("rnn_byte"),
                                               symmetric=False, colorscale="Blues"), "transformer_attention", key="rnn_attention")
        st.caption(tr("rnn_same_input_explain", n=len(data)))
        for column, (name, model) in zip(st.columns(2), ((GRU, rnn), (TRANSFORMER, transformer))):
            ids, probs = recurrent.next_bytes(model, text)
            column.caption(tr("rnn_next", model=name))
            column.dataframe(pd.DataFrame({tr("rnn_byte"): [visible(readable_bytes(bytes([i]))) for i in ids],
                                           tr("probability"): np.round(probs, 3)}), hide_index=True)


def memory(models) -> None:
    """What each keeps to go on: the GRU's fixed state against a growing KV cache."""
    rnn, transformer, _ = models
    GRU = tr("rnn_name_gru")
    st.header(tr("rnn_memory"))
    series = {GRU: (CACHE_LENGTHS, [rnn.state_bytes()] * len(CACHE_LENGTHS)),
              tr("rnn_our_transformer"): (CACHE_LENGTHS, [transformer.cache_bytes(n) for n in CACHE_LENGTHS])}
    for name, (layers, kv_heads, head_dim) in recurrent.KNOWN_DECODERS.items():
        series[name] = (CACHE_LENGTHS, [recurrent.kv_cache_bytes(layers, kv_heads, head_dim, n) for n in CACHE_LENGTHS])
    show_figure(figures.lines(series, tr("rnn_memory_title"), tr("rnn_length"), tr("rnn_bytes"), True, True,
                              dashed=tuple(recurrent.KNOWN_DECODERS)),
                "memory", pd.DataFrame({name: ys for name, (_, ys) in series.items()}, index=CACHE_LENGTHS).reset_index(), key="memory")
    st.caption(tr("rnn_memory_explain", state=rnn.state_bytes()))


def speed(models) -> None:
    """Forward time against length, training rate and per-token latency, measured here."""
    rnn, transformer, record = models
    GRU, TRANSFORMER = tr("rnn_name_gru"), tr("rnn_name_transformer")  # names shown in legends, in the page's language
    st.header(tr("rnn_speed"))
    device = device_of(rnn).type  # where the pair runs, which is where it was measured
    with working("rnn_measuring"):
        measured = recurrent.speeds_here()  # measured once per process, in the background at start
    slope = recurrent.loglog_slope
    show_figure(figures.lines({
        f"{GRU} (× {slope(LENGTHS, measured['rnn_forward']):.2f})": (LENGTHS, measured["rnn_forward"]),
        f"{TRANSFORMER} (× {slope(LENGTHS, measured['transformer_forward']):.2f})": (LENGTHS, measured["transformer_forward"]),
        f"{GRU}, {tr('rnn_long')} (× {slope(ATTENTION_LENGTHS, measured['rnn_long']):.2f})": (ATTENTION_LENGTHS, measured["rnn_long"]),
        f"{tr('rnn_attention_only')} (× {slope(ATTENTION_LENGTHS, measured['attention'], 3):.2f})": (ATTENTION_LENGTHS, measured["attention"]),
    }, tr("rnn_forward_title", device=device), tr("rnn_length"), tr("rnn_seconds"), True, True), "forward_times", key="forward")
    left, right = st.columns(2)
    left.metric(tr("rnn_train_rate", model=GRU), f"{measured['rnn_train']:,.0f}")
    right.metric(tr("rnn_train_rate", model=TRANSFORMER), f"{measured['transformer_train']:,.0f}")
    latency = measured["latency"]
    show_figure(figures.lines({GRU: (latency["position"], latency["rnn"]),
                               tr("rnn_kv_transformer"): (latency["position"], latency["transformer"])},
                              tr("rnn_latency_title"), tr("rnn_position"), tr("rnn_seconds"), True, True),
                "generation_latency", pd.DataFrame(latency), key="latency")
    st.caption(tr("rnn_speed_explain"))


def long_range(models) -> None:
    """Recall at a distance and how far back the gradient reaches."""
    rnn, transformer, record = models
    GRU, TRANSFORMER = tr("rnn_name_gru"), tr("rnn_name_transformer")  # names shown in legends, in the page's language
    st.header(tr("rnn_long_range"))
    accuracy = {name: record[key]["recall"] for name, key in ((GRU, "gru"), (TRANSFORMER, "transformer"))}
    show_figure(figures.lines({name: ([int(k) for k in acc], list(acc.values())) for name, acc in accuracy.items()},
                              tr("rnn_recall_title"), tr("rnn_distance"), tr("rnn_accuracy")),
                "recall_accuracy", pd.DataFrame(accuracy), key="recall")
    distance = st.slider(tr("rnn_distance"), 5, 195, key=url_state("gap", 120, bounded(int, 5, 195)))
    ids, asked, shown = recurrent.recall_example(distance)
    tokens = recurrent.describe(ids)
    answer = tokens[asked - shown].split("=")[1]
    st.code(" ".join(tokens[max(0, asked - shown - 2): asked + 1]) + f"  →  {answer}", language=None, wrap_lines=True)
    back = list(range(0, shown + 12))
    influence = {name: recurrent.saliency(model, ids.tolist(), asked)[: asked + 1][::-1][: len(back)]
                 for name, model in ((GRU, rnn), (TRANSFORMER, transformer))}
    show_figure(figures.lines({name: (back, values) for name, values in influence.items()}, tr("rnn_saliency_title"),
                              tr("rnn_steps_back"), tr("rnn_gradient"), log_y=True),
                "saliency", pd.DataFrame(influence, index=back).reset_index(), key="saliency")
    st.caption(tr("rnn_saliency_explain", k=shown))


def train_live(models) -> None:
    """Both trained from scratch here with a live loss curve."""
    rnn, transformer, record = models
    GRU, TRANSFORMER = tr("rnn_name_gru"), tr("rnn_name_transformer")  # names shown in legends, in the page's language
    st.header(tr("rnn_train_live"))
    left, right = st.columns(2)
    task = left.radio(tr("rnn_task"), ["both", "text", "recall"], horizontal=True, key=url_state("task", "recall", one_of(("both", "text", "recall"))),
                      format_func=translated("rnn_task_"))
    steps = right.slider(tr("rnn_steps"), 10, 600, step=10, key=url_state("steps", 300, bounded(int, 10, 600)))
    st.caption(tr("rnn_train_explain"))
    # The click is kept in session state by a callback, so it survives a rerun before this line (see ensure_app_shell).
    st.button(tr("rnn_start"), key="train_start", on_click=lambda: st.session_state.update(train_requested=True))
    if st.session_state.pop("train_requested", False):
        st.button(tr("rnn_cancel"), key="train_cancel")  # any click reruns the page, which stops the loop below
        config = dataclasses.replace(recurrent.PairConfig(**record["config"]), steps=steps, recall_warmup=steps // 3,
                                     seed=int(record["config"]["seed"]) + 1)
        fresh = dict(zip((GRU, TRANSFORMER), recurrent.build_pair(config)))  # new weights; the shipped ones untouched
        curves = {name: [] for name in fresh}
        chart = st.empty()
        for name, model in fresh.items():
            bar = st.progress(0.0, text=f"{name}…")

            def show(step, row, name=name, bar=bar):
                curves[name].append(sum(v for k, v in row.items() if k.endswith("loss")))
                bar.progress((step + 1) / steps, text=f"{name}: {step + 1}/{steps}")
                if step % 10 == 9 or step + 1 == steps:
                    chart.plotly_chart(figures.lines({n: (list(range(1, len(c) + 1)), c) for n, c in curves.items() if c},
                                                     tr("rnn_live_title"), tr("rnn_step"), tr("rnn_loss")), key=f"live_{name}_{step}")

            recurrent.train(model, config, task=task, progress=show)
        recall = {name: float(np.mean(list(recurrent.recall_accuracy(model, samples=32).values()))) for name, model in fresh.items()}
        st.success(tr("rnn_trained", steps=steps, rnn=recall[GRU], transformer=recall[TRANSFORMER]))
