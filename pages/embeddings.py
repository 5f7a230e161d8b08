"""Embeddings: text to vectors, the vocabulary on a map, neighbours and analogies, meaning in context, sentence search."""

from pages.common import page, require_model
from pages.views import embeddings

page(*embeddings.PARAMS, title="nav_embeddings", intro="emb_intro")
loaded = require_model()
result = embeddings.text_to_vectors(loaded)
embeddings.vocabulary(loaded, result)
embeddings.analogies(loaded)
embeddings.in_context(loaded)
embeddings.sentence_search(loaded)
