"""Quantization, measured: memory, weights and their grid, the next token, speed."""

from pages.common import page, require_model
from pages.views import quantize

page(*quantize.PARAMS, title="nav_quantize", intro="quant_intro")
loaded = require_model()
quantize.caveat(loaded)
group, symmetric = quantize.controls()
chosen = quantize.schemes(group, symmetric)
quantize.memory(loaded, chosen)
quantize.weights(loaded, chosen)
quantize.behaviour(loaded, chosen)
quantize.speed(loaded, chosen)
