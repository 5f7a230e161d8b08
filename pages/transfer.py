"""Transfer learning: pre-trained sentence vectors need far fewer labels than features learned from scratch."""

import streamlit as st

from pages.common import page, tr
from pages.views import transfer

page(*transfer.PARAMS)

st.title(tr("nav_transfer"))
st.write(tr("transfer_intro"))
transfer.learning_curves()
transfer.encoder_fine_tune()
