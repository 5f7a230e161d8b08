"""Prompting views: the same sentiment task zero-shot, with an instruction and few-shot (three example orders),
measured live on the model; the prompt shown as tokens; each sentence's label-word probabilities."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from explorer import figures, prompting, tokenize
from explorer.models import LoadedModel
from pages.common import compute, lang, one_of, show_figure, tr, translated, url_state

PARAMS = ("plang", "pstyle")
VARIANTS = ("zero_shot", "instruction", *[f"few_shot_{order}" for order in prompting.ORDERS])


@st.cache_data(show_spinner=False, max_entries=8)
def _measured(_loaded, fingerprint: str, language: str) -> list[prompting.Measured]:
    return prompting.measure_all(_loaded, language)


def _variant(measured: prompting.Measured) -> str:
    return f"few_shot_{measured.order}" if measured.style == "few_shot" else measured.style


def prompting_styles(loaded: LoadedModel) -> None:
    """Accuracy per prompt style (and per order of the few-shot examples), the prompt as tokens, every sentence."""
    st.subheader(tr("prompt_title"))
    st.write(tr("prompt_intro"))
    left, right = st.columns(2)
    languages = {"ko": tr("korean"), "en": tr("english")}
    language = left.radio(tr("prompt_language"), list(languages), horizontal=True, format_func=languages.get,
                          key=url_state("plang", lang(), one_of(tuple(languages))))
    chosen = right.selectbox(tr("prompt_shown"), VARIANTS, format_func=translated("prompt_variant_"),
                             key=url_state("pstyle", "few_shot_alternating", one_of(VARIANTS)))
    results = compute(_measured, loaded, loaded.fingerprint, language)
    if results is None:
        return
    names = [tr(f"prompt_variant_{_variant(m)}") for m in results]
    accuracies = [m.accuracy for m in results]
    show_figure(figures.before_after_bars(names, accuracies, None, tr("prompt_accuracy_title", model=loaded.info.key),
                                          tr("prompt_accuracy"), "", tr("prompt_accuracy"), tokens=False),
                "prompt_accuracy", pd.DataFrame({"prompt": [_variant(m) for m in results], "accuracy": accuracies}),
                key="prompt_accuracy")
    by_name = {_variant(m): m for m in results}
    zero, few = by_name["zero_shot"].accuracy, max(by_name[f"few_shot_{o}"].accuracy for o in prompting.ORDERS)
    orders = [by_name[f"few_shot_{o}"].accuracy for o in prompting.ORDERS]
    st.write(tr("prompt_reading", zero=zero, instruction=by_name["instruction"].accuracy, few=few,
                low=min(orders), high=max(orders), n=len(by_name["zero_shot"].labels)))
    shown = by_name[chosen]
    st.caption(tr("prompt_as_tokens"))
    tokens = tokenize.from_hf(loaded.tokenizer, shown.prompt)
    st.html(figures.token_row_html(shown.prompt, tokens.tokens))
    task = prompting.load_task()
    words = [task.labels[label][language] for label in prompting.LABELS]
    table = pd.DataFrame({tr("prompt_sentence"): [s["text"] for s in task.test[language]],
                          tr("prompt_label"): [task.labels[label][language] for label in shown.labels],
                          f"P(␣{words[0]})": shown.probabilities[:, 0].round(4),
                          f"P(␣{words[1]})": shown.probabilities[:, 1].round(4),
                          tr("prompt_answer"): [task.labels[label][language] for label in shown.predicted]})
    with st.container(key="prompt_table"):
        st.dataframe(table, hide_index=True, width="stretch")
    st.caption(tr("prompt_explain"))
