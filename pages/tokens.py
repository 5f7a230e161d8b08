"""Tokenization: the first tokenizer, six tokenizers side by side, the pipeline step by step, BPE learning live, what Korean costs."""

from pages.common import current_model, needed, page
from pages.views import tokens

page(*tokens.PARAMS, title="nav_tokens", intro="tok_intro")
loaded = current_model()
tokens.first_tokenizer()
text = needed(tokens.side_by_side(loaded))
tokens.pipeline(loaded, text)
tokens.bpe_live(text)
tokens.cost()
