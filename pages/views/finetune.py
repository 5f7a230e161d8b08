"""Fine-tuning views on the current decoder: LoRA and the chat template that SFT taught."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import adapting, figures, jobs, memory, models
from explorer.models import LoadedModel
from pages.common import (bounded, compute, current_model, lang, one_of, show_error, show_figure, tr,
                          translated, url_state)
from pages.views import jobs as jobs_view

PARTS = ("lora", "qlora", "chat", "api", "sft", "reward", "dpo", "prompt")
PARAMS = ("part", "lpreset", "lrank", "lsteps", "llr", "lseed", "chatq")
RANKS = (1, 2, 4, 8, 16, 32, 64)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3)
LORA_PRESETS = tuple(adapting.presets()["lora"])

def _preset_name(kind: str):
    language = lang()  # read now: a format_func may be called outside the script run
    return lambda key: adapting.presets()[kind][key]["name"][language]


def _fill_lora_preset(preset: str, examples: str, prompts: str | None) -> None:
    chosen = adapting.presets()["lora"][st.session_state[preset]]
    st.session_state[examples] = "\n".join(chosen["examples"])
    if prompts:
        st.session_state[prompts] = "\n".join(chosen["prompts"])


def lora_examples(preset: str, examples: str, prompts: str | None = None, height: int = 200) -> str:
    """An example set to start from (`preset`: its widget's key, from `url_state`) and the training examples it
    fills in, one per line (and the prompts to compare, when the view has them): the LoRA and QLoRA parts' form."""
    st.selectbox(tr("preset"), LORA_PRESETS, format_func=_preset_name("lora"), on_change=_fill_lora_preset,
                 args=(preset, examples, prompts), key=preset)
    if examples not in st.session_state:
        _fill_lora_preset(preset, examples, prompts)
    return st.text_area(tr("lora_examples", n=adapting.MAX_EXAMPLES), key=examples, height=height)


def refused(check, *args) -> bool:
    """Run an engine check; a refusal is explained (the inputs stay as typed) and True is returned."""
    try:
        check(*args)
    except jobs.TrainingError as error:
        show_error(error)
        return True
    return False


def part() -> str:
    """Which of the parts the page shows."""
    return st.segmented_control(tr("finetune_part"), PARTS, format_func=translated("finetune_part_"), required=True,
                                key=url_state("part", "lora", one_of(PARTS))) or "lora"


# ---------------------------------------------------------------- LoRA

def lora(loaded: LoadedModel) -> None:
    """Examples, settings and a LoRA training; then the prompts read before and after."""
    st.subheader(tr("lora_title"))
    st.write(tr("lora_intro"))
    examples = lora_examples(url_state("lpreset", "fact", one_of(LORA_PRESETS)), "lora_examples", "lora_prompts")
    prompts = st.text_area(tr("lora_prompts"), key="lora_prompts", height=100, help=tr("lora_prompts_help"))
    first, second, third, fourth = st.columns(4)
    rank = first.select_slider(tr("lora_rank"), RANKS, key=url_state("lrank", 8, one_of(RANKS, int)), help=tr("lora_rank_help"))
    steps = second.number_input(tr("training_steps"), 1, adapting.MAX_STEPS, step=5,
                                key=url_state("lsteps", 30, bounded(int, 1, adapting.MAX_STEPS)))
    rate = third.select_slider(tr("learning_rate"), LEARNING_RATES, key=url_state("llr", 2e-3, one_of(LEARNING_RATES, float)))
    seed = fourth.number_input(tr("seed"), 0, 10_000, step=1, key=url_state("lseed", 0, bounded(int, 0, 10_000)))
    settings = adapting.LoraSettings(int(rank), int(steps), float(rate), int(seed))
    is_refused = refused(adapting.check_lora, loaded.tokenizer, examples, settings)

    def work(job: jobs.Job) -> adapting.Adapter:
        return adapting.train_lora(loaded, examples, settings, job)

    jobs_view.start_button(tr("training_start"), "lora", settings.steps, work, type="primary", disabled=is_refused)
    jobs_view.panel("lora", lambda job: st.session_state.__setitem__("lora_adapter", job.result))
    adapter = st.session_state.get("lora_adapter")
    if adapter is not None and adapter.base_fingerprint == loaded.fingerprint:
        _lora_result(loaded, adapter, [p.strip() for p in prompts.splitlines() if p.strip()][:8])


@st.cache_data(show_spinner=False, max_entries=64)
def _compare(_loaded, _adapter, fingerprint: str, digest: str, prompt: str) -> adapting.Comparison:
    return adapting.compare(_loaded, adapted(_loaded, _adapter), prompt)


def adapted(loaded: LoadedModel, adapter: adapting.Adapter) -> LoadedModel:
    """The shared model seen through an adapter: its own small modules, the shared weights (no copy)."""
    return models.derived(loaded, "adapted", lambda: adapting.with_adapter(loaded, adapter), adapter.digest,
                          measure=lambda _: sum(memory.stored_bytes(w) for w in adapter.weights.values()))


def _lora_result(loaded: LoadedModel, adapter: adapting.Adapter, prompts: list[str]) -> None:
    st.success(tr("lora_done", steps=len(adapter.losses), first=adapter.losses[0], last=adapter.losses[-1]))
    first, second, third = st.columns(3)
    first.metric(tr("lora_trainable"), f"{adapter.trainable:,}", f"{adapter.trainable / adapter.total:.2%}",
                 delta_color="off", help=tr("lora_trainable_help", total=adapter.total))
    second.metric(tr("lora_adapter_size"), f"{adapter.size_bytes / 1024:,.0f} KB",
                  f"{tr('lora_model_size')} {adapter.model_bytes / 2**20:,.0f} MB", delta_color="off")
    third.download_button(tr("lora_download"), lambda: adapting.adapter_zip(loaded, adapter), "lora_adapter.zip",
                          "application/zip", key="lora_download", help=tr("lora_download_help"))
    show_figure(jobs_view.loss_figure(adapter.losses), "lora_loss", jobs_view.loss_data(adapter.losses),
                key="lora_loss")
    st.subheader(tr("lora_compare_title"))
    st.caption(tr("lora_compare_explain"))
    if not prompts:
        st.info(tr("lora_no_prompts"))
        return
    comparisons = [compute(_compare, loaded, adapter, loaded.fingerprint, adapter.digest, prompt) for prompt in prompts]
    comparisons = [c for c in comparisons if c is not None]
    with st.container(key="lora_compare"):
        st.dataframe(pd.DataFrame({tr("prompt"): [c.prompt for c in comparisons],
                                   tr("before"): [c.continuation_before for c in comparisons],
                                   tr("after"): [c.continuation_after for c in comparisons]}),
                     hide_index=True, width="stretch")
    chosen = st.selectbox(tr("lora_prompt_for_bars"), range(len(comparisons)),
                          format_func=lambda i: comparisons[i].prompt, key="lora_bar_prompt")
    picked = comparisons[min(chosen, len(comparisons) - 1)]
    show_figure(figures.before_after_bars(picked.labels, picked.before, picked.after,
                                          tr("lora_bars_title", prompt=picked.prompt), tr("before"), tr("after"),
                                          tr("probability")),
                "lora_next_token", pd.DataFrame({"token": picked.labels, "before": picked.before, "after": picked.after}),
                key="lora_bars")
    st.caption(tr("lora_forgetting"))
    if st.button(tr("lora_discard"), key="lora_discard"):
        del st.session_state["lora_adapter"]
        st.rerun()


# ---------------------------------------------------------------- the chat template

@st.cache_data(show_spinner=False, max_entries=32)
def _answers(_loaded, fingerprint: str, request: str) -> tuple[adapting.TemplateView, str, str]:
    view = adapting.template_view(_loaded, request)
    raw_ids = [int(i) for i in adapting.prediction.encode(_loaded, request, adapting.prediction.MAX_TOKENS)[0]]
    return view, adapting.answer(_loaded, raw_ids, 32, end_of_turn=False), adapting.answer(_loaded, view.ids)


def chat_model(loaded: LoadedModel) -> LoadedModel | None:
    """The model itself when it has a chat template; a base model has none: said in a sentence, and the bundled
    instruction-tuned model is used instead."""
    if getattr(loaded.tokenizer, "chat_template", None):
        return loaded
    st.info(tr("chat_no_template", model=loaded.info.key, instruct=models.SMOLLM2))
    return current_model(models.SMOLLM2)


def chat_template(loaded: LoadedModel) -> None:
    """The same request raw and wrapped in the chat template: the template's tokens and both answers."""
    st.subheader(tr("chat_title"))
    st.write(tr("chat_intro"))
    loaded = chat_model(loaded)
    if loaded is None:
        return
    request = st.text_input(tr("chat_request"), key=url_state("chatq", tr("chat_sample")))
    result = compute(_answers, loaded, loaded.fingerprint, request)
    if result is None:
        return
    view, raw, templated = result
    st.caption(tr("chat_tokens", n=len(view.ids)))
    st.html(figures.token_row_html(view.text, view.tokens.tokens))
    raw_column, chat_column = st.columns(2)
    with raw_column, st.container(key="chat_raw"):
        st.markdown(f"**{tr('chat_raw')}**")
        st.html(figures.plain_text_html(request, raw))
    with chat_column, st.container(key="chat_answer"):
        st.markdown(f"**{tr('chat_templated')}**")
        st.html(figures.plain_text_html("", templated))
    st.write(tr("chat_sft"))
