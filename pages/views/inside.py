"""Inside the model: its shape, and a map of what every head does on one sentence."""

import pandas as pd
import streamlit as st

from explorer import activations, figures
from explorer.capture_attention import HEAD_STATS
from explorer.models import LoadedModel
from pages.common import capture_or_explain, one_of, show_figure, tr, translated, url_state

PARAMS = ("text", "stat")


def shape(loaded: LoadedModel) -> None:
    """The model's family, size and layout as a table."""
    info = loaded.info
    st.subheader(tr("inside_shape"))
    shape = {
        tr("field_family"): tr(f"family_{info.family}"),
        tr("field_architecture"): info.architecture,
        tr("field_layers"): info.layers,
        tr("field_query_heads"): info.query_heads,
        tr("field_kv_heads"): info.kv_heads,
        tr("field_hidden_size"): info.hidden_size,
        tr("field_vocab_size"): f"{info.vocab_size:,}",
        tr("field_max_length"): f"{info.max_length:,}",
        tr("field_parameters"): f"{info.parameters:,}",
        tr("field_source"): tr(f"source_{info.source}"),
        tr("field_device"): f"{info.device} · {info.dtype}",
    }
    st.table(pd.DataFrame({tr("field_name"): list(shape), tr("field_value"): [str(v) for v in shape.values()]}).set_index(tr("field_name")))


def head_map(loaded: LoadedModel) -> None:
    """What every head does on one text: a layers × heads heatmap of the chosen statistic."""
    info = loaded.info
    text = st.text_area(tr("inside_text"), key=url_state("text", tr("sample_text")), height=100)
    stat = st.radio(tr("inside_stat"), HEAD_STATS, horizontal=True, format_func=translated("stat_"),
                    key=url_state("stat", "entropy", one_of(HEAD_STATS)))
    result = capture_or_explain(loaded, text, ["blocks.*.attn.head_stats"], max_tokens=1024)
    if result is not None:
        st.caption(tr("inside_tokens", n=len(result.token_ids)))
        table = activations.head_stats_table(result)  # (layers, heads, stats)
        values = table[:, :, HEAD_STATS.index(stat)]  # (layers, heads)
        layers, heads = values.shape
        data = pd.DataFrame([{"layer": l, "head": h, **{s: float(table[l, h, i]) for i, s in enumerate(HEAD_STATS)}}
                             for l in range(layers) for h in range(heads)])
        show_figure(
            figures.layer_head_heatmap(values, tr("heatmap_title", stat=tr(f"stat_{stat}")), tr("layer"), tr("head"),
                                       tr(f"stat_{stat}")),
            f"head_stats_{info.key}_{stat}", data, key="head_stats",
        )
        st.write(tr("inside_explain"))
