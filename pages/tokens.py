"""Tokenization: six tokenizers side by side, the pipeline step by step, BPE learning live, what Korean costs."""

import streamlit as st

from pages.common import current_model, page
from pages.views import tokens

page(*tokens.PARAMS, title="nav_tokens", intro="tok_intro")
loaded = current_model()
text = tokens.side_by_side(loaded)
if text is None:
    st.stop()
tokens.pipeline(loaded, text)
tokens.bpe_live(text)
tokens.cost()
