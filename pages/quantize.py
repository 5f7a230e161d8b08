"""Quantization, measured: memory, weights and their grid, the next token, speed."""

import streamlit as st

from pages.common import page, require_model, tr
from pages.views import quantize

page(*quantize.PARAMS)

st.title(tr("nav_quantize"))
st.write(tr("quant_intro"))
loaded = require_model()
quantize.caveat(loaded)
group, symmetric = quantize.controls()
chosen = quantize.schemes(group, symmetric)
copies = quantize.built(loaded, chosen)
quantize.memory(copies)
quantize.weights(loaded, copies)
quantize.behaviour(loaded, copies)
quantize.speed(loaded, copies)
