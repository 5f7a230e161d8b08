"""Attention: where each token looks, from one head to every layer, for short and long texts."""

from pages.common import needed, page, require_model
from pages.views import attention

page(*attention.PARAMS, title="nav_attention", intro="attention_intro")
loaded = require_model()
shown = needed(attention.inputs(loaded))
attention.one_head(loaded, shown)
attention.roles(loaded, shown)
attention.compare(loaded, shown)
