"""Quantization on 2 CPU cores (issue 15): building each copy of SmolLM2, the memory all copies hold together,
perplexity on 2,000 tokens per scheme, time per forward, and the page's first view once the copies exist.

    python3 bench/bench_quantize.py

Targets: each copy built <= 10 s; all schemes held at once <= 700 MB above the loaded model; perplexity on 2,000
tokens <= 15 s per scheme; the page's first view <= 5 s after the copies exist (a new visitor, as on a server that
has run the page before; the first visitor of a process also measures errors, speed and perplexity once).
The 2,000 tokens are the bundled texts (the long Korean/English sample, the RAG passages, the topic sentences).
"""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer import activations, models, process, quantize  # noqa: E402
from measure import PeakMemory  # noqa: E402

ASSETS = ROOT / "assets"


def bundled_text() -> str:
    passages = [p["text"] for p in json.loads((ASSETS / "rag" / "documents.json").read_text(encoding="utf-8"))["passages"]]
    topics = json.loads((ASSETS / "adapting" / "topics.json").read_text(encoding="utf-8"))
    sentences = [s for row in topics["sentences"] for s in (row["en"], row["ko"])]
    return "\n\n".join([(ASSETS / "sample_long.txt").read_text(encoding="utf-8"), *passages, *sentences])


def open_page() -> float:
    started = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params.update({"lang": "ko"})
    at.switch_page("pages/quantize.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return time.perf_counter() - started


def main() -> None:
    process.tune_allocator()  # as app.py does for the server process
    loaded = models.load(models.SMOLLM2)
    memory = PeakMemory()
    before = memory.reset()
    text = bundled_text()
    tokens = len(activations.encode(loaded, text, quantize.MAX_TOKENS)[0])
    copies = [quantize.quantized(loaded, quantize.Scheme(name)) for name in quantize.SCHEMES]
    process.release_freed_memory()
    held = memory.process.memory_info().rss - before
    stored = sum(copy.matrix_bytes for copy in copies if copy.scheme.name != "fp32")  # fp32 shares the model's tensors
    print(f"all {len(copies)} copies built and held at once: {held / 2**20:.0f} MB resident above the loaded model "
          f"(their stored matrices: {stored / 2**20:.0f} MB), peak while building {(memory.lifetime_peak - before) / 2**20:.0f} MB "
          f"(target <= 700 MB)")
    print(f"{'scheme':<22}{'library':<9}{'build s':>9}{'bytes/param':>13}{'ppl':>8}{'ppl s':>7}{'forward ms':>12}")
    for copy in copies:
        scheme = copy.scheme
        started = time.perf_counter()
        found = quantize.perplexity(copy.loaded, text, 2_000)
        seconds = time.perf_counter() - started
        forward = quantize.seconds_per_forward(copy.loaded)
        print(f"{scheme.key:<22}{copy.library:<9}{copy.seconds:>9.2f}{copy.matrix_bytes / copy.matrix_parameters:>13.3f}"
              f"{found:>8.2f}{seconds:>7.2f}{forward * 1000:>12.0f}")
    print(f"perplexity over {min(tokens, 2_000):,} tokens of the bundled texts (target <= 15 s each); "
          f"copies built <= 10 s each; forward = 64 tokens, best of 3")
    process.release_freed_memory()
    print(f"after every scheme's perplexity and forwards: {(memory.process.memory_info().rss - before) / 2**20:.0f} MB "
          f"resident above the loaded model")
    first = open_page()
    print(f"page, first visitor of this process (copies exist; errors, speed, perplexity measured): {first:.1f} s")
    again = open_page()
    print(f"page, first view of a new visitor after that: {again:.1f} s (target <= 5 s)")


if __name__ == "__main__":
    main()
