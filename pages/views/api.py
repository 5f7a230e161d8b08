"""What an API call carries: the request and the response of a chat-completions call as JSON, answered by the local
instruction-tuned model, and what the same request costs in Korean and in English."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import adapting, api, figures, tokenize
from explorer.models import LoadedModel
from pages.common import bounded, compute, lang, show_figure, tr, url_state
from pages.views.finetune import chat_model

PARAMS = ("apiq", "apiother", "apitemp", "apimax", "apiin", "apiout")
SAMPLES = json.loads((Path(__file__).resolve().parents[2] / "assets" / "samples.json").read_text(encoding="utf-8"))["api"]


@st.cache_data(show_spinner=False, max_entries=32)
def _call(_loaded, fingerprint: str, request: str, temperature: float, max_tokens: int) -> api.ApiCall:
    return api.chat_completion(_loaded, [{"role": "user", "content": request}], temperature, max_tokens)


def _price(label: str, key: str) -> float | None:
    typed = st.text_input(label, key=key)
    price = api.parse_price(typed)
    if price is None:
        st.warning(tr("api_bad_price", text=typed[:40]))
    return price


def api_call(loaded: LoadedModel) -> None:
    """The request as JSON, the local model's answer as a chat-completions response, and the cost of the request."""
    st.subheader(tr("api_title"))
    st.write(tr("api_intro"))
    loaded = chat_model(loaded)
    if loaded is None:
        return
    request = st.text_area(tr("api_request"), key=url_state("apiq", SAMPLES[lang()][0]), height=80)
    first, second = st.columns(2)
    temperature = first.slider(tr("temperature"), 0.0, api.MAX_TEMPERATURE, step=0.1,
                               key=url_state("apitemp", 0.7, bounded(float, 0.0, api.MAX_TEMPERATURE)))
    max_tokens = second.number_input(tr("api_max_tokens"), 1, api.MAX_COMPLETION_TOKENS,
                                     key=url_state("apimax", 48, bounded(int, 1, api.MAX_COMPLETION_TOKENS)))
    call = compute(_call, loaded, loaded.fingerprint, request, float(temperature), int(max_tokens))
    if call is not None:
        sent, received = st.columns(2)
        with sent:
            st.markdown(f"**{tr('api_sent')}** · `POST /v1/chat/completions`")
            st.code(json.dumps(call.request, ensure_ascii=False, indent=2), language="json", wrap_lines=True)
        with received, st.container(key="api_response"):
            st.markdown(f"**{tr('api_received')}**")
            st.code(json.dumps(call.response, ensure_ascii=False, indent=2), language="json", wrap_lines=True)
        usage = call.response["usage"]
        st.caption(tr("api_usage", prompt=usage["prompt_tokens"], words=len(request.split()),
                      completion=usage["completion_tokens"], model=loaded.info.key))
    _cost(loaded, request, float(temperature), int(max_tokens))


def _cost(loaded: LoadedModel, request: str, temperature: float, max_tokens: int) -> None:
    """The request and the same request in the other language, each answered: tokens both ways, and the price."""
    st.subheader(tr("api_cost_title"))
    other = st.text_area(tr("api_other"), key=url_state("apiother", SAMPLES[lang()][1]), height=80)
    first, second = st.columns(2)
    with first:
        price_in = _price(tr("api_price_in"), url_state("apiin", "0.15"))
    with second:
        price_out = _price(tr("api_price_out"), url_state("apiout", "0.60"))
    texts = [text for text in (request, other) if text.strip()][:2]
    if price_in is None or price_out is None or not texts:
        return
    rows = []
    for text in texts:
        call = compute(_call, loaded, loaded.fingerprint, text, temperature, max_tokens)
        if call is None:
            return
        usage = call.response["usage"]
        rows.append({tr("api_language"): tr("api_korean") if adapting.HANGUL.search(text) else tr("api_english"),
                     tr("api_text"): text[:80], tr("api_prompt_tokens"): usage["prompt_tokens"],
                     tr("api_completion_tokens"): usage["completion_tokens"],
                     tr("api_tokens_cl100k"): tokenize.tokenize_with("cl100k", text).count,
                     tr("api_cost_thousand"): f"${1000 * api.cost(usage['prompt_tokens'], usage['completion_tokens'], price_in, price_out):.4f}"})
    table = pd.DataFrame(rows)
    with st.container(key="api_cost"):
        st.dataframe(table, hide_index=True, width="stretch")
    inputs, outputs = list(table[tr("api_prompt_tokens")]), list(table[tr("api_completion_tokens")])
    show_figure(figures.before_after_bars(list(table[tr("api_language")]), inputs, outputs,
                                          tr("api_tokens_title", model=loaded.info.key), tr("api_prompt_tokens"),
                                          tr("api_completion_tokens"), tr("api_tokens_axis"), tokens=False),
                "api_tokens", table, key="api_tokens")
    if len(rows) == 2:
        st.caption(tr("api_ratio", ratio=max(inputs) / max(1, min(inputs)), model=loaded.info.key))
    st.caption(tr("api_cost_explain"))
