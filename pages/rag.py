"""Retrieval-augmented generation, end to end: documents, retrieval, the prompt, the answer, what it drew on."""

import streamlit as st

from explorer import models
from pages.common import current_model, page, require_model, tr
from pages.views import rag

page("csize", "coverlap", "q", "k", "method")

st.title(tr("nav_rag"))
st.write(tr("rag_intro"))
decoder = require_model(decoder=True)
encoder = current_model(models.MINILM)
if encoder is None:
    st.stop()
index = rag.documents(encoder, decoder)
found = rag.retrieval(index, encoder) if index is not None else None
if found is not None:
    retrieval, chosen, method = found
    passages = [index.chunks[i].text for i in chosen]
    prompt = rag.prompt_view(decoder, retrieval.question, passages)
    if prompt is not None:
        answer_ids = rag.answer(decoder, retrieval.question, prompt)
        rag.drew_on(decoder, retrieval.question, prompt, passages, answer_ids)
rag.accuracy(encoder, decoder)
