"""RAG on 2 CPU cores (issue 14): indexing and retrieval over 1,000 passages, a 30-token answer, attribution.

    python3 bench/bench_rag.py

Targets: indexing 1,000 passages <= 5 s; retrieval over them <= 200 ms once indexed (BM25 + MiniLM + fusion);
a 30-token answer with k = 1 <= 5 s; attribution (attention and leave-one-out log-probabilities) <= 5 s.
The 1,000 passages are the bundled ones repeated with a number written into each, so that no two are equal.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import models, prediction, process, rag  # noqa: E402


def best_of(runs: int, function, *args):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    encoder, decoder = models.load(models.MINILM), models.load(models.SMOLLM2)
    rag.morphemes("워밍업 warm-up")  # Kiwi's model loads once per process
    print(f"MiniLM under bf16 autocast (native bf16 on this CPU): {process.native_bf16()}")
    for language, question in (("en", "How tall is the lighthouse on Gull Point?"), ("ko", "새별천문대 망원경의 지름은 얼마인가요?"),
                               (None, "How tall is the lighthouse on Gull Point?")):
        bundled = [p["text"] for p in rag.bundled()["passages"] if language in (None, p["lang"])]
        chunks = rag.chunk([f"({n}) {bundled[n % len(bundled)]}" for n in range(1000)])
        seconds, index = best_of(1, rag.build_index, encoder, chunks)
        print(f"indexing {len(chunks):,} {language or 'mixed'} passages (Kiwi morphemes + bm25s + MiniLM vectors): "
              f"{seconds:.2f} s (target <= 5 s)")
        seconds, _ = best_of(5, rag.retrieve, index, encoder, question)
        print(f"  retrieval over them, '{question[:24]}…': {seconds * 1000:.0f} ms (target <= 200 ms)")

    small = rag.build_index(encoder, rag.chunk(rag.paragraphs(rag.bundled_text())))
    question = "How tall is the lighthouse on Gull Point?"
    found = rag.retrieve(small, encoder, question)
    for k in (1, 3):
        passages_k = [small.chunks[i].text for i in found.top("fused", k)]
        prompt = rag.build_prompt(decoder, question, passages_k)
        answer = list(rag.stream_answer(decoder, prompt, rag.ANSWER_TOKENS))
        seconds, (forced, _) = best_of(1, prediction.generate_ids, decoder, prompt.ids, 30)  # past the end of turn
        print(f"answer, k = {k} ({len(prompt.ids)} prompt tokens): {len(forced)} tokens in {seconds:.2f} s "
              f"(target for 30 tokens at k = 1 <= 5 s): {rag.answer_text(decoder, answer)[:60]!r}")
        seconds, attribution = best_of(1, rag.attribute, decoder, question, passages_k, answer)
        print(f"attribution, k = {k}: {seconds:.2f} s (target <= 5 s); drop per passage {attribution.drop.round(1)}")


if __name__ == "__main__":
    main()
