"""Alignment views on the base model: instruction tuning (SFT) measured before and after, a reward model trained on
preference pairs, best-of-n sampling with it, and preference tuning (DPO) from the SFT model, the stages side by side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import adapting, alignment, figures, jobs, tokenize
from explorer.models import LoadedModel
from pages.common import bounded, compute, lang, one_of, show_figure, tr, url_state
from pages.views.finetune import adapted, refused
from pages.views import jobs as jobs_view

PARAMS = ("ssteps", "bon", "bprompt", "dpreset", "dsteps", "beta", "dlr", "dseed")
DPO_PRESETS = ("helpful", *adapting.presets()["dpo"])  # helpful: the bundled preference pairs (Korean and English)
BETAS = (0.05, 0.1, 0.2, 0.5)
SFT_LEARNING_RATE = 1e-3  # on Gemma, 8 steps: held-out loss 2.94 -> 2.06; at 2e-3 it does not fall (bench_alignment)
DPO_LEARNING_RATES = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
DPO_LOSS = (r"\mathcal{L}_{\mathrm{DPO}} = -\log\sigma\Big(\beta\big[\log\tfrac{\pi_\theta(y_w\mid x)}{\pi_{\mathrm{ref}}(y_w\mid x)}"
            r" - \log\tfrac{\pi_\theta(y_l\mid x)}{\pi_{\mathrm{ref}}(y_l\mid x)}\big]\Big)")


def _instructions(key: str, rows: list[alignment.Instruction]) -> list[alignment.Instruction]:
    if key not in st.session_state:
        st.session_state[key] = pd.DataFrame([row.__dict__ for row in rows])
    table = st.data_editor(st.session_state[key], num_rows="dynamic", key=f"{key}_editor", width="stretch",
                           column_config={"instruction": tr("sft_instruction"), "answer": tr("sft_answer")})
    return [alignment.Instruction(str(r.get("instruction") or ""), str(r.get("answer") or ""))
            for r in table.to_dict("records")]


@st.cache_data(show_spinner=False, max_entries=16)
def _behaviour(_loaded, fingerprint: str, pairs: tuple[alignment.Instruction, ...]) -> alignment.Behaviour:
    return alignment.behaviour(_loaded, list(pairs))


def sft(loaded: LoadedModel) -> None:
    """The instruction set, the turn format as tokens, a LoRA SFT run, and held-out answers before and after."""
    st.subheader(tr("sft_title"))
    st.write(tr("sft_intro"))
    data = alignment.bundled()
    example = alignment.turn_text(loaded.tokenizer, data["sft"][0].instruction) + data["sft"][0].answer + \
        alignment.end_of_answer(loaded.tokenizer)
    st.caption(tr("sft_format", end=alignment.end_of_answer(loaded.tokenizer)))
    st.html(figures.token_row_html(example, tokenize.from_hf(loaded.tokenizer, example).tokens))
    pairs = _instructions("sft_pairs", data["sft"])
    steps = st.number_input(tr("training_steps"), 1, adapting.MAX_STEPS, step=5,
                            key=url_state("ssteps", 8, bounded(int, 1, adapting.MAX_STEPS)))
    settings = adapting.LoraSettings(rank=8, steps=int(steps), learning_rate=SFT_LEARNING_RATE)
    if refused(alignment.check_sft, loaded.tokenizer, pairs, settings):
        return

    def work(job: jobs.Job) -> adapting.Adapter:
        return alignment.train_sft(loaded, pairs, settings, job)

    jobs_view.start_button(tr("training_start"), "sft", settings.steps, work, tuple(pairs), type="primary")
    jobs_view.panel("sft", lambda job: st.session_state.__setitem__("sft_adapter", job.result))
    held_out = tuple(data["held_out"])
    before = compute(_behaviour, loaded, loaded.fingerprint, held_out)
    adapter = sft_adapter(loaded)
    after = None
    if adapter is not None:
        show_figure(jobs_view.loss_figure(adapter.losses, height=320), "sft_loss", jobs_view.loss_data(adapter.losses),
                    key="sft_loss")
        tuned = through(loaded, adapter)
        after = compute(_behaviour, tuned, tuned.fingerprint, held_out)
    if before is None:
        return
    first, second = st.columns(2)
    first.metric(tr("sft_stop_share"), f"{before.stop_share:.0%}" if after is None else f"{after.stop_share:.0%}",
                 None if after is None else f"{(after.stop_share - before.stop_share) * 100:+.0f}%p")
    second.metric(tr("sft_held_out_loss"), f"{before.loss:.2f}" if after is None else f"{after.loss:.2f}",
                  None if after is None else f"{after.loss - before.loss:+.2f}", delta_color="inverse")
    rows = {tr("sft_instruction"): [p.instruction for p in held_out],
            tr("sft_base_answer"): _marked(before.answers, before.stopped)}
    if after is not None:
        rows[tr("sft_tuned_answer")] = _marked(after.answers, after.stopped)
    with st.container(key="sft_answers"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(tr("sft_explain", n=len(held_out)))


def _marked(answers: list[str], stopped: list[bool]) -> list[str]:
    """'…' after an answer that was still going when the count ran out."""
    return [answer + ("" if ended else " …") for answer, ended in zip(answers, stopped)]


@st.cache_resource(show_spinner=False, max_entries=4)
def _reward_model(_loaded, fingerprint: str, pairs: tuple, held_out: tuple) -> alignment.RewardModel:
    return alignment.train_reward(_loaded, list(pairs), list(held_out))


def reward(loaded: LoadedModel) -> None:
    """A reward model trained on the bundled preference pairs: its accuracy, the reward of any answer, best-of-n."""
    st.subheader(tr("reward_title"))
    st.write(tr("reward_intro"))
    st.latex(r"\mathcal{L} = -\log\sigma\big(r(x, y_w) - r(x, y_l)\big)")
    data = alignment.bundled()
    model = compute(_reward_model, loaded, loaded.fingerprint, tuple(data["preferences"]),
                    tuple(data["preferences_held_out"]))
    if model is None:
        return
    first, second = st.columns(2)
    first.metric(tr("reward_train_accuracy", n=len(data["preferences"])), f"{model.train_accuracy:.0%}")
    second.metric(tr("reward_held_out_accuracy", n=len(data["preferences_held_out"])), f"{model.held_out_accuracy:.0%}")
    show_figure(jobs_view.loss_figure(model.losses, height=300), "reward_loss", jobs_view.loss_data(model.losses),
                key="reward_loss")
    prompt = st.text_input(tr("reward_prompt"), key=url_state("bprompt", data["preferences_held_out"][0].prompt))
    typed = st.text_area(tr("reward_answers"), key="reward_answers", height=100,
                         value="\n".join([data["preferences_held_out"][0].chosen, data["preferences_held_out"][0].rejected]))
    answers = [line.strip() for line in typed.splitlines() if line.strip()][:8]
    if prompt.strip() and answers:
        scores = compute(alignment.rewards, loaded, model, prompt, answers)
        if scores is not None:
            show_figure(figures.before_after_bars(answers, list(scores), None, tr("reward_bars_title"), tr("reward"), "",
                                                  tr("reward"), tokens=False),
                        "rewards", pd.DataFrame({"answer": answers, "reward": scores}), key="reward_bars")
    _best_of_n(loaded, model, prompt)


def sft_adapter(loaded: LoadedModel) -> adapting.Adapter | None:
    """The adapter this session's SFT trained on this model, if any."""
    adapter = st.session_state.get("sft_adapter")
    return adapter if adapter is not None and adapter.base_fingerprint == loaded.fingerprint else None


def through(loaded: LoadedModel, adapter: adapting.Adapter | None) -> LoadedModel:
    return loaded if adapter is None else adapted(loaded, adapter)


def _best_of_n(loaded: LoadedModel, model: alignment.RewardModel, prompt: str) -> None:
    st.subheader(tr("bon_title"))
    policy = through(loaded, sft_adapter(loaded))
    st.caption(tr("bon_policy_sft" if policy is not loaded else "bon_policy_base"))
    n = st.number_input(tr("bon_n"), 2, 8, key=url_state("bon", 4, bounded(int, 2, 8)))
    if not prompt.strip():
        st.info(tr("bon_needs_prompt"))
        return
    found = compute(alignment.best_of_n, policy, loaded, model, prompt, int(n))
    if found is None:
        return
    table = pd.DataFrame({tr("bon_candidate"): found.answers, tr("reward"): found.rewards.round(2),
                          tr("bon_chosen"): ["★" if i == found.best else "" for i in range(len(found.answers))]})
    with st.container(key="bon_candidates"):
        st.dataframe(table, hide_index=True, width="stretch")
    st.write(tr("bon_explain"))


# ---------------------------------------------------------------- preference tuning (DPO)

def _dpo_preset_names():
    """The presets' names in the page's language, read now: a format_func may be called outside the script run."""
    names = {key: preset["name"][lang()] for key, preset in adapting.presets()["dpo"].items()}
    names["helpful"] = tr("dpo_preset_helpful")
    return names.__getitem__


def _fill_dpo_preset() -> None:
    name = st.session_state["dpreset"]
    if name == "helpful":
        data = alignment.bundled()
        pairs = [pair.__dict__ for pair in data["preferences"][:alignment.MAX_PAIRS]]
        prompts = [row.instruction for row in data["held_out"]]
    else:
        pairs, prompts = adapting.presets()["dpo"][name]["pairs"], adapting.presets()["dpo"][name]["prompts"]
    st.session_state["dpo_table"] = pd.DataFrame(pairs)
    st.session_state["dpo_prompts"] = "\n".join(prompts)
    st.session_state.pop("dpo_pairs", None)  # the editor starts again from the new table


@st.cache_data(show_spinner=False, max_entries=32)
def _margins(_loaded, fingerprint: str, pairs: tuple[alignment.PreferencePair, ...]):
    return alignment.log_prob_margins(_loaded, list(pairs))


@st.cache_data(show_spinner=False, max_entries=32)
def _answers(_loaded, fingerprint: str, prompts: tuple[str, ...]) -> tuple[list[str], list[bool]]:
    return alignment.answers(_loaded, list(prompts))


def preference(loaded: LoadedModel) -> None:
    """Preferred and rejected answers, the model's margin between them, a few DPO steps from the SFT model (when
    this session trained one), and the stages' answers side by side."""
    st.subheader(tr("dpo_title"))
    st.write(tr("dpo_intro"))
    st.latex(DPO_LOSS)
    st.caption(tr("dpo_loss_symbols"))
    chat_model = bool(getattr(loaded.tokenizer, "chat_template", None))
    st.selectbox(tr("preset"), DPO_PRESETS, format_func=_dpo_preset_names(), on_change=_fill_dpo_preset,
                 key=url_state("dpreset", "pirate" if chat_model else "helpful", one_of(DPO_PRESETS)))
    if "dpo_table" not in st.session_state:
        _fill_dpo_preset()
    table = st.data_editor(st.session_state["dpo_table"], num_rows="dynamic", key="dpo_pairs", width="stretch",
                           column_config={"prompt": tr("prompt"), "chosen": tr("dpo_chosen"),
                                          "rejected": tr("dpo_rejected")})
    pairs = tuple(alignment.PreferencePair(str(r.get("prompt") or ""), str(r.get("chosen") or ""),
                                           str(r.get("rejected") or "")) for r in table.to_dict("records"))
    prompts = st.text_area(tr("dpo_prompts"), key="dpo_prompts", height=80)
    first, second, third, fourth = st.columns(4)
    steps = first.number_input(tr("training_steps"), 1, adapting.MAX_STEPS, step=2,
                               key=url_state("dsteps", 12, bounded(int, 1, adapting.MAX_STEPS)))
    beta = second.select_slider(tr("dpo_beta"), BETAS, key=url_state("beta", 0.1, one_of(BETAS, float)),
                                help=tr("dpo_beta_help"))
    # a chat model moves visibly at 1e-3; Gemma's base SFT'd collapses there (junk tokens) and moves cleanly at 1e-4
    rate = third.select_slider(tr("learning_rate"), DPO_LEARNING_RATES, format_func=lambda r: f"{r:g}",
                               key=url_state("dlr", 1e-3 if chat_model else 1e-4, one_of(DPO_LEARNING_RATES, float)),
                               help=tr("dpo_rate_help"))
    seed = fourth.number_input(tr("seed"), 0, 10_000, step=1, key=url_state("dseed", 0, bounded(int, 0, 10_000)))
    start = sft_adapter(loaded)
    st.caption(tr("dpo_from_sft" if start is not None else "dpo_from_model"))
    if refused(alignment.check_pairs, list(pairs)):
        return
    settings = alignment.DpoSettings(steps=int(steps), learning_rate=float(rate), beta=float(beta), seed=int(seed))

    def work(job: jobs.Job) -> tuple[adapting.Adapter, dict, adapting.Adapter | None]:
        return alignment.train_dpo(loaded, list(pairs), settings, job, start=start), job.extra, start

    jobs_view.start_button(tr("training_start"), "dpo", settings.steps, work, pairs, type="primary")
    # the pairs it was trained on, even if the table was edited while it trained
    jobs_view.panel("dpo", lambda job: st.session_state.__setitem__("dpo_result", (job.inputs, *job.result)))
    result = st.session_state.get("dpo_result")
    listed = [p.strip() for p in prompts.splitlines() if p.strip()][:6]
    if result is not None and result[1].base_fingerprint == loaded.fingerprint:
        _preference_result(loaded, *result, listed)
    else:
        before = compute(_margins, through(loaded, start), through(loaded, start).fingerprint, pairs)
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


def _preference_result(loaded: LoadedModel, pairs, adapter: adapting.Adapter, curves: dict,
                       start: adapting.Adapter | None, prompts: list[str]) -> None:
    reference, tuned = through(loaded, start), through(loaded, adapter)
    before = compute(_margins, reference, reference.fingerprint, pairs)
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
    stages(loaded, start, adapter, prompts)


def stages(loaded: LoadedModel, sft: adapting.Adapter | None, dpo: adapting.Adapter, prompts: list[str]) -> None:
    """The same prompts answered by each stage: the model itself, after SFT (when DPO started there), after DPO."""
    policies = [(tr("stage_base"), loaded)] + ([(tr("stage_sft"), through(loaded, sft))] if sft is not None else []) + \
        [(tr("stage_dpo"), through(loaded, dpo))]
    rows = {tr("prompt"): prompts}
    for name, model in policies:
        found = compute(_answers, model, model.fingerprint, tuple(prompts)) if prompts else ([], [])
        if found is None:
            return
        rows[name] = _marked(*found)
    with st.container(key="dpo_answers"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(tr("stages_explain", n=alignment.ANSWER_TOKENS))
