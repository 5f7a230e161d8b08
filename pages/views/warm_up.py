"""What the app computes once per process, in the background, once the server has served its first page: the work that
is the same for every visitor (explorer/warmup.py runs it; a page that needs a result first waits for the same one).
Measured on a fresh process (bench/bench_memory.py): the RAG page's first view spent 13 s on its two answers and 5 s
on what the answer drew on, the quantization page on Gemma ~5 s a scheme (six), the RNN page 7-10 s on its speed
figures, the transfer page 15 s on its learning curves (in a browser), the tokens page ~3 s on Kiwi and tokenizers. Both languages' defaults are measured (Gemma in Korean,
SmolLM2 in English)."""

from explorer import models, recurrent, tokenize, warmup
from pages.views import quantize, rag, transfer


def _in(language: str, warm_up):
    def run() -> None:
        if not models.needs_conversion(models.DEFAULT_MODEL[language]):  # a first conversion is left to the page
            warm_up(language)
    return run


TASKS = [  # Korean first: the course's language; its default model is the one left resident at the end
    ("tokenizers", lambda: [models.bundled_tokenizer(key) for key in models.BUNDLED if not models.needs_conversion(key)]),
    ("kiwi", tokenize.kiwi),
    ("rnn_speeds", recurrent.speeds_here),
    *((f"{name}_{language}", _in(language, view.warm_up)) for language in ("ko", "en") for name, view in
      (("rag", rag), ("quantize", quantize))),
    ("transfer_curves", _in("ko", lambda language: transfer.warm_up())),
    ("model_ko", _in("ko", lambda language: models.shared(models.DEFAULT_MODEL[language]))),
]


def start(wait: bool = False) -> bool:
    """Once per process: in the background, or with `wait` on this thread (a bench measuring the first views a
    server serves once it has started)."""
    return warmup.start(TASKS, wait)
