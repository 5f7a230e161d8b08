"""Tokenization figures (issue 3), measured in one run and printed as ratios to the issue's budgets:

- the page's compute for a 2,000-character text across every bundled tokenizer, warm (budget 300 ms);
- training a 1,000-merge byte-level BPE on a 1 MB corpus and replaying its merges over that corpus (budget 5 s).

    python3 bench/bench_tokenize.py
"""

import os
import statistics
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import figures, models, tokenize  # noqa: E402

CORPUS = (ROOT / "assets" / "corpus_ko_en.txt").read_text(encoding="utf-8")
SAMPLE = (ROOT / "assets" / "sample_long.txt").read_text(encoding="utf-8")


def page_compute(text: str) -> float:
    """What the page computes for one text: every bundled tokenizer, its chips, the pipeline, the BPE step and curve."""
    started = time.perf_counter()
    for kind in tokenize.KINDS:
        result = tokenize.tokenize_with(kind, text)
        figures.token_row_html(result.text, result.tokens)
    tokenize.pipeline(models.bundled_tokenizer("smollm2-135m"), text)
    trained = tokenize.train_bpe(CORPUS, 300)  # the page caches this one; counted here anyway
    tokenize.bpe_replay(trained, text, 100)
    tokenize.bpe_counts(trained, text, list(range(0, 301, 5)))
    return time.perf_counter() - started


def one_megabyte_corpus() -> str:
    """Our Korean-English corpus plus English prose from the Python standard library's docstrings, to 1 MB."""
    parts, size = [CORPUS] * 40, len(CORPUS.encode()) * 40  # about 430 KB of Korean and English
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="ignore")
        parts.append(text)
        size += len(text.encode())
        if size >= 1_000_000:
            break
    return "\n".join(parts).encode()[:1_000_000].decode("utf-8", "ignore")


def main() -> None:
    text = ((SAMPLE + "\n" + CORPUS) * 2)[:2000]
    print(f"text: {len(text)} characters, {len(text.encode())} UTF-8 bytes")
    page_compute(text)  # warm: tokenizers loaded, Kiwi's model read
    runs = [page_compute(text) for _ in range(7)]
    median = statistics.median(runs)
    print(f"page compute, all {len(tokenize.KINDS)} bundled tokenizers + chips + pipeline + BPE (median of 7): "
          f"{median * 1000:.0f} ms = {median / 0.300:.2f} of the 300 ms budget")
    for kind in tokenize.KINDS:
        started = time.perf_counter()
        count = tokenize.tokenize_with(kind, text).count
        print(f"  {kind:<11} {count:>5} tokens {(time.perf_counter() - started) * 1000:6.1f} ms")

    corpus = one_megabyte_corpus()
    started = time.perf_counter()
    trained = tokenize.train_bpe(corpus, 1000)
    trained_at = time.perf_counter()
    replayed = tokenize.bpe_counts(trained, corpus, [len(trained.merges)])[0]
    done = time.perf_counter()
    total = done - started
    print(f"BPE on {len(corpus.encode()):,} bytes: {len(trained.merges)} merges learned in {trained_at - started:.2f} s, "
          f"replayed over the corpus ({replayed:,} tokens, {len(corpus.encode()) / replayed:.2f} bytes per token) in "
          f"{done - trained_at:.2f} s; total {total:.2f} s = {total / 5:.2f} of the 5 s budget")


if __name__ == "__main__":
    main()
