"""RNN vs Transformer: two small byte-level models trained here, side by side, measured live."""

import streamlit as st

from pages.common import page
from pages.views import recurrent

page(*recurrent.PARAMS, title="nav_recurrent", intro="rnn_intro")
models = recurrent.pair()
if models is None:
    st.stop()
recurrent.pair_table(models)
recurrent.same_input(models)
recurrent.memory(models)
recurrent.speed(models)
recurrent.long_range(models)
recurrent.train_live(models)
