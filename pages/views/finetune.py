"""Fine-tuning views on the current decoder: LoRA, the chat template that SFT taught, preference tuning (DPO)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import adapting, figures, jobs, models
from explorer.models import LoadedModel
from pages.common import (bounded, compute, current_model, lang, one_of, show_error, show_figure, tr, translated,
                          url_state)
from pages.views import jobs as jobs_view

PARTS = ("lora", "chat", "sft", "reward", "dpo", "prompt")
PARAMS = ("part", "lpreset", "lrank", "lsteps", "llr", "lseed", "chatq", "dpreset", "dsteps", "beta", "dseed")
RANKS = (1, 2, 4, 8, 16, 32, 64)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 5e-3)
LORA_PRESETS = tuple(adapting.presets()["lora"])
DPO_PRESETS = tuple(adapting.presets()["dpo"])
DPO_LOSS = (r"\mathcal{L}_{\mathrm{DPO}} = -\log\sigma\Big(\beta\big[\log\tfrac{\pi_\theta(y_w\mid x)}{\pi_{\mathrm{ref}}(y_w\mid x)}"
            r" - \log\tfrac{\pi_\theta(y_l\mid x)}{\pi_{\mathrm{ref}}(y_l\mid x)}\big]\Big)")


def _preset_name(kind: str):
    language = lang()  # read now: a format_func may be called outside the script run
    return lambda key: adapting.presets()[kind][key]["name"][language]


def _fill_lora_preset() -> None:
    chosen = adapting.presets()["lora"][st.session_state["lpreset"]]
    st.session_state["lora_examples"] = "\n".join(chosen["examples"])
    st.session_state["lora_prompts"] = "\n".join(chosen["prompts"])


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
    st.selectbox(tr("preset"), LORA_PRESETS, format_func=_preset_name("lora"), on_change=_fill_lora_preset,
                 key=url_state("lpreset", "fact", one_of(LORA_PRESETS)))
    if "lora_examples" not in st.session_state:
        _fill_lora_preset()
    examples = st.text_area(tr("lora_examples", n=adapting.MAX_EXAMPLES), key="lora_examples", height=200)
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
    return adapting.compare(_loaded, adapted(_loaded, _adapter, fingerprint, digest), prompt)


@st.cache_resource(show_spinner=False, max_entries=4)
def adapted(_loaded, _adapter, fingerprint: str, digest: str) -> LoadedModel:
    """The shared model seen through an adapter: its own small modules, the shared weights (no copy)."""
    return adapting.with_adapter(_loaded, _adapter)


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


def chat_template(loaded: LoadedModel) -> None:
    """The same request raw and wrapped in the chat template: the template's tokens and both answers. A base model
    has no template: said in a sentence, and shown on the bundled instruction-tuned model instead."""
    st.subheader(tr("chat_title"))
    st.write(tr("chat_intro"))
    if not getattr(loaded.tokenizer, "chat_template", None):
        st.info(tr("chat_no_template", model=loaded.info.key, instruct=models.SMOLLM2))
        loaded = current_model(models.SMOLLM2)
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


# ---------------------------------------------------------------- preference tuning

def _fill_dpo_preset() -> None:
    chosen = adapting.presets()["dpo"][st.session_state["dpreset"]]
    st.session_state["dpo_table"] = pd.DataFrame(chosen["pairs"])
    st.session_state["dpo_prompts"] = "\n".join(chosen["prompts"])
    st.session_state.pop("dpo_pairs", None)  # the editor starts again from the new table


@st.cache_data(show_spinner=False, max_entries=32)
def _margins(_loaded, fingerprint: str, pairs: tuple[adapting.PreferencePair, ...]):
    return adapting.log_prob_margins(_loaded, list(pairs))


@st.cache_data(show_spinner=False, max_entries=32)
def _dpo_answers(_loaded, _adapter, fingerprint: str, digest: str, prompt: str) -> tuple[str, str]:
    ids = adapting.request_ids(_loaded.tokenizer, prompt)
    return adapting.answer(_loaded, ids, 32), adapting.answer(adapted(_loaded, _adapter, fingerprint, digest), ids, 32)


def preference(loaded: LoadedModel) -> None:
    """Preferred and rejected answers, the model's margin between them, a few DPO steps, and what moved."""
    st.subheader(tr("dpo_title"))
    st.write(tr("dpo_intro"))
    st.latex(DPO_LOSS)
    st.caption(tr("dpo_loss_symbols"))
    st.selectbox(tr("preset"), DPO_PRESETS, format_func=_preset_name("dpo"), on_change=_fill_dpo_preset,
                 key=url_state("dpreset", "pirate", one_of(DPO_PRESETS)))
    if "dpo_table" not in st.session_state:
        _fill_dpo_preset()
    table = st.data_editor(st.session_state["dpo_table"], num_rows="dynamic", key="dpo_pairs", width="stretch",
                           column_config={"prompt": tr("prompt"), "chosen": tr("dpo_chosen"),
                                          "rejected": tr("dpo_rejected")})
    pairs = tuple(adapting.PreferencePair(str(r.get("prompt") or ""), str(r.get("chosen") or ""),
                                          str(r.get("rejected") or "")) for r in table.to_dict("records"))
    prompts = st.text_area(tr("dpo_prompts"), key="dpo_prompts", height=80)
    first, second, third = st.columns(3)
    steps = first.number_input(tr("training_steps"), 1, adapting.MAX_STEPS, step=2,
                               key=url_state("dsteps", 12, bounded(int, 1, adapting.MAX_STEPS)))
    beta = second.select_slider(tr("dpo_beta"), (0.05, 0.1, 0.2, 0.5), key=url_state("beta", 0.1, one_of((0.05, 0.1, 0.2, 0.5), float)),
                                help=tr("dpo_beta_help"))
    seed = third.number_input(tr("seed"), 0, 10_000, step=1, key=url_state("dseed", 0, bounded(int, 0, 10_000)))
    if refused(adapting.check_pairs, list(pairs)):
        return
    settings = adapting.DpoSettings(steps=int(steps), beta=float(beta), seed=int(seed))

    def work(job: jobs.Job) -> tuple[adapting.Adapter, dict]:
        return adapting.train_dpo(loaded, list(pairs), settings, job), job.extra

    jobs_view.start_button(tr("training_start"), "dpo", settings.steps, work, pairs, type="primary")
    # the pairs it was trained on, even if the table was edited while it trained
    jobs_view.panel("dpo", lambda job: st.session_state.__setitem__("dpo_result", (job.inputs, *job.result)))
    result = st.session_state.get("dpo_result")
    if result is not None and result[1].base_fingerprint == loaded.fingerprint:
        _preference_result(loaded, *result, [p.strip() for p in prompts.splitlines() if p.strip()][:6])
    else:
        before = compute(_margins, loaded, loaded.fingerprint, pairs)
        if before is not None:
            _margin_bars(before, None)
    st.write(tr("rlhf_paragraph"))


def _margin_bars(before, after) -> None:
    names = [f"#{i + 1}" for i in range(len(before))]
    data = pd.DataFrame({"pair": names, "before": before} | ({"after": after} if after is not None else {}))
    show_figure(figures.before_after_bars(names, list(before), None if after is None else list(after),
                                          tr("dpo_margin_title"), tr("before"), tr("after"), tr("dpo_margin_axis")),
                "dpo_margins", data, key="dpo_margins")
    st.caption(tr("dpo_margin_explain"))


def _preference_result(loaded: LoadedModel, pairs, adapter: adapting.Adapter, curves: dict, prompts: list[str]) -> None:
    tuned = adapted(loaded, adapter, loaded.fingerprint, adapter.digest)
    before = compute(_margins, loaded, loaded.fingerprint, pairs)
    after = compute(_margins, tuned, tuned.fingerprint, pairs)
    if before is None or after is None:
        return
    st.success(tr("dpo_done", steps=len(adapter.losses)))
    _margin_bars(before, after)
    loss_column, margin_column = st.columns(2)
    with loss_column:
        show_figure(jobs_view.loss_figure(adapter.losses, height=340), "dpo_loss",
                    jobs_view.loss_data(adapter.losses, curves), key="dpo_loss")
    with margin_column:
        margins = curves.get("margin", [])
        show_figure(figures.lines({tr("curve_margin"): (range(1, len(margins) + 1), margins)}, tr("dpo_margin_curve"),
                                  tr("training_step"), tr("dpo_margin_axis"), height=340), "dpo_margin_curve",
                    jobs_view.loss_data(adapter.losses, curves), key="dpo_margin_curve")
    rows = []
    for prompt in prompts:
        answers = compute(_dpo_answers, loaded, adapter, loaded.fingerprint, adapter.digest, prompt)
        if answers is not None:
            rows.append({tr("prompt"): prompt, tr("before"): answers[0], tr("after"): answers[1]})
    with st.container(key="dpo_answers"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
