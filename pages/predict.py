"""Next-token prediction: the distribution, the sampling controls, writing step by step, the logit lens, surprise."""

import streamlit as st

from pages.common import page, require_model
from pages.views import predict

page(*predict.PARAMS, title="nav_predict", intro="predict_intro")
loaded = require_model(decoder=True)
read = predict.inputs(loaded)
if read is None:
    st.stop()
predict.candidates(loaded, read)
predict.greedy_vs_sampled(loaded, read)
predict.logit_lens(read)
predict.surprise(read)
