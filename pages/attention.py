"""Attention: where each token looks, from one head to every layer, for short and long texts."""

import streamlit as st

from pages.common import page, require_model
from pages.views import attention

page(*attention.PARAMS, title="nav_attention", intro="attention_intro")
loaded = require_model()
shown = attention.inputs(loaded)
if shown is None:
    st.stop()
attention.one_head(loaded, shown)
attention.roles(loaded, shown)
attention.compare(loaded, shown)
