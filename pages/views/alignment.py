"""Alignment views on the base model: instruction tuning (SFT) measured before and after, a reward model trained on
preference pairs, and best-of-n sampling with it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import adapting, alignment, figures, jobs, tokenize
from explorer.models import LoadedModel
from pages.common import bounded, compute, show_figure, tr, url_state
from pages.views.finetune import adapted, refused
from pages.views import jobs as jobs_view

PARAMS = ("ssteps", "bon", "bprompt")


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
    st.caption(tr("sft_format"))
    st.html(figures.token_row_html(example, tokenize.from_hf(loaded.tokenizer, example).tokens))
    pairs = _instructions("sft_pairs", data["sft"])
    steps = st.number_input(tr("training_steps"), 1, adapting.MAX_STEPS, step=5,
                            key=url_state("ssteps", 8, bounded(int, 1, adapting.MAX_STEPS)))
    settings = adapting.LoraSettings(rank=8, steps=int(steps), learning_rate=2e-3)
    if refused(alignment.check_sft, loaded.tokenizer, pairs, settings):
        return

    def work(job: jobs.Job) -> adapting.Adapter:
        return alignment.train_sft(loaded, pairs, settings, job)

    jobs_view.start_button(tr("training_start"), "sft", settings.steps, work, tuple(pairs), type="primary")
    jobs_view.panel("sft", lambda job: st.session_state.__setitem__("sft_adapter", job.result))
    held_out = tuple(data["held_out"])
    before = compute(_behaviour, loaded, loaded.fingerprint, held_out)
    adapter = st.session_state.get("sft_adapter")
    after = None
    if adapter is not None and adapter.base_fingerprint == loaded.fingerprint:
        show_figure(jobs_view.loss_figure(adapter.losses, height=320), "sft_loss", jobs_view.loss_data(adapter.losses),
                    key="sft_loss")
        tuned = adapted(loaded, adapter, loaded.fingerprint, adapter.digest)
        after = compute(_behaviour, tuned, tuned.fingerprint, held_out)
    if before is None:
        return
    first, second = st.columns(2)
    first.metric(tr("sft_stop_share"), f"{before.stop_share:.0%}" if after is None else f"{after.stop_share:.0%}",
                 None if after is None else f"{(after.stop_share - before.stop_share) * 100:+.0f}%p")
    second.metric(tr("sft_held_out_loss"), f"{before.loss:.2f}" if after is None else f"{after.loss:.2f}",
                  None if after is None else f"{after.loss - before.loss:+.2f}", delta_color="inverse")
    rows = {tr("sft_instruction"): [p.instruction for p in held_out],
            tr("sft_base_answer"): [a + ("" if s else " …") for a, s in zip(before.answers, before.stopped)]}
    if after is not None:
        rows[tr("sft_tuned_answer")] = [a + ("" if s else " …") for a, s in zip(after.answers, after.stopped)]
    with st.container(key="sft_answers"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(tr("sft_explain", n=len(held_out)))


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


def _best_of_n(loaded: LoadedModel, model: alignment.RewardModel, prompt: str) -> None:
    st.subheader(tr("bon_title"))
    adapter = st.session_state.get("sft_adapter")
    policy = adapted(loaded, adapter, loaded.fingerprint, adapter.digest) if adapter is not None and adapter.base_fingerprint == loaded.fingerprint else loaded
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
