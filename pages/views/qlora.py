"""QLoRA beside LoRA: the same examples trained on the float model and on its frozen quantized copy, the loss curves,
and what each step holds in memory, with full fine-tuning's counted beside them and the arithmetic for 7B and 70B."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import adapting, figures, jobs, qlora
from explorer.models import LoadedModel
from pages.common import bounded, one_of, show_figure, tr, translated, url_state
from pages.views import jobs as jobs_view
from pages.views.finetune import LORA_PRESETS, lora_examples, refused

PARAMS = ("qpreset", "qsteps", "qscheme")
MAX_STEPS = 30  # two trainings: Gemma's 30 + 30 steps take ~100 s
ROWS = ("frozen", "trainable", "gradients", "optimizer", "activations")


def qlora_training(loaded: LoadedModel) -> None:
    """Examples and a scheme; one job trains LoRA on the float model, then on the quantized copy."""
    st.subheader(tr("qlora_title"))
    st.write(tr("qlora_intro"))
    examples = lora_examples(url_state("qpreset", "fact", one_of(LORA_PRESETS)), "qlora_examples", height=150)
    first, second = st.columns(2)
    scheme = first.radio(tr("qlora_scheme"), qlora.SCHEMES, horizontal=True, format_func=translated("qlora_scheme_"),
                         key=url_state("qscheme", "int4_group", one_of(qlora.SCHEMES)))
    steps = second.number_input(tr("training_steps"), 1, MAX_STEPS, step=5,
                                key=url_state("qsteps", 10, bounded(int, 1, MAX_STEPS)))
    settings = adapting.LoraSettings(steps=int(steps))
    inputs = (loaded.fingerprint, examples, settings, scheme)

    def work(job: jobs.Job) -> qlora.Comparison:
        return qlora.compare(loaded, examples, settings, scheme, job)

    jobs_view.start_button(tr("qlora_start"), "qlora", 2 * settings.steps, work, inputs, type="primary",
                           disabled=refused(adapting.check_lora, loaded.tokenizer, examples, settings))
    jobs_view.panel("qlora", lambda job: st.session_state.__setitem__("qlora_result", (job.inputs, job.result)))
    kept = st.session_state.get("qlora_result")
    if kept is not None and kept[0] == inputs:  # trained on these examples and settings, on this model
        _result(kept[1])


def _result(result: qlora.Comparison) -> None:
    lora_name, qlora_name = tr("qlora_lora"), tr("qlora_qlora", bits=result.scheme.split("_")[0])
    first, second, third = st.columns(3)
    first.metric(tr("qlora_final_loss", method=lora_name), f"{result.lora_losses[-1]:.2f}")
    second.metric(tr("qlora_final_loss", method=qlora_name), f"{result.qlora_losses[-1]:.2f}",
                  f"{result.qlora_losses[-1] - result.lora_losses[-1]:+.2f}", delta_color="inverse")
    third.metric(tr("qlora_step_time"), f"{result.qlora_seconds:.2f} s",
                 tr("qlora_step_time_lora", seconds=result.lora_seconds), delta_color="off",
                 delta_arrow="off")
    steps = list(range(1, len(result.lora_losses) + 1))
    with st.container(key="qlora_losses"):
        show_figure(figures.lines({lora_name: (steps, result.lora_losses), qlora_name: (steps, result.qlora_losses)},
                                  tr("loss_title"), tr("training_step"), tr("loss"), dashed=(qlora_name,)),
                    "qlora_loss", pd.DataFrame({"step": steps, "lora": result.lora_losses,
                                                "qlora": result.qlora_losses}), key="qlora_loss")
    st.caption(tr("qlora_loss_explain"))
    st.markdown(f"**{tr('qlora_memory_title')}**")
    methods = {method: tr(f"qlora_method_{method}") for method in qlora.METHODS}
    table = pd.DataFrame({methods[method]: [getattr(m, row) / 2**20 for row in ROWS] + [m.total / 2**20]
                          for method, m in result.memory.items()},
                         index=[tr(f"qlora_row_{row}") for row in ROWS] + [tr("qlora_row_total")])
    with st.container(key="qlora_memory"):
        st.dataframe(table.style.format("{:,.1f} MB"), width="stretch")
    st.caption(tr("qlora_memory_explain", matrices=result.quantized_matrix_parameters / result.parameters,
                  matrix_mb=result.quantized_matrix_bytes / 2**20))
    st.markdown(f"**{tr('qlora_scale_title')}**")
    rows, names = [], {"full": tr("qlora_scale_full"), "lora": "LoRA", "qlora": "QLoRA"}
    for size in qlora.SCALES:
        for source, found in (("here", qlora.at_scale(result, size)), ("papers", qlora.published_at_scale(size))):
            rows.append({tr("qlora_scale_model"): f"{size / 1e9:.0f}B", tr("qlora_scale_source"): tr(f"qlora_{source}"),
                         **{names[method]: f"{found[method] / 1e9:,.1f} GB" for method in qlora.METHODS}})
    with st.container(key="qlora_scale"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(tr("qlora_scale_explain"))
