"""Inside the model: its shape, and a map of what every head does on one sentence."""

import streamlit as st

from pages.common import current_model, page, tr
from pages.views import inside

page(*inside.PARAMS)
st.title(tr("nav_inside"))
st.write(tr("inside_intro"))
loaded = current_model()
if loaded is not None:
    inside.shape(loaded)
    inside.head_map(loaded)
