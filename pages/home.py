"""Home: what each page shows, and where today's models come from."""

import streamlit as st

from pages.common import page, tr
from pages.views import history

PAGES = ("tokens", "embeddings", "inside", "attention", "predict", "recurrent", "transfer", "finetune", "rag", "quantize",
         "lab", "lessons")
page(title="app_title", intro="home_intro")
st.header(tr("home_pages"))
st.markdown("\n".join(f"- {tr(f'home_page_{name}')}" for name in PAGES))
st.caption(tr("link_hint"))
st.header(tr("home_history"))
history.timeline()
history.sizes()
st.header(tr("home_glossary"), anchor="glossary")
history.glossary_table()
