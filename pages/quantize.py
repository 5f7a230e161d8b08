"""Quantization, measured: memory, weights and their grid, the next token, speed."""

from pages.common import page, require_model
from pages.views import quantize

page(*quantize.PARAMS, title="nav_quantize", intro="quant_intro")
loaded = require_model()
quantize.caveat(loaded)
group, symmetric = quantize.controls()
chosen = quantize.schemes(group, symmetric)
copies = quantize.built(loaded, chosen)
quantize.memory(copies)
quantize.weights(loaded, copies)
quantize.behaviour(loaded, copies)
quantize.speed(loaded, copies)
