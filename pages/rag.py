"""Retrieval-augmented generation, end to end: documents, retrieval, the prompt, the answer, what it drew on."""

from explorer import models
from pages.common import current_model, needed, page, require_model
from pages.views import rag

page(*rag.PARAMS, title="nav_rag", intro="rag_intro")
decoder = require_model(decoder=True)
encoder = needed(current_model(models.MINILM))
rag.pipeline(encoder, decoder)
rag.accuracy(encoder, decoder)
