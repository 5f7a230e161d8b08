"""RNN vs Transformer: two small byte-level models trained here, side by side, measured live."""

from pages.common import needed, page
from pages.views import recurrent

page(*recurrent.PARAMS, title="nav_recurrent", intro="rnn_intro")
models = needed(recurrent.pair())
recurrent.pair_table(models)
recurrent.same_input(models)
recurrent.memory(models)
recurrent.speed(models)
recurrent.long_range(models)
recurrent.train_live(models)
