"""Prediction figures (issue 5, prediction half), measured in one run: a next-token step with a cached prefix.

    python3 bench/bench_prediction.py
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import activations, models, prediction  # noqa: E402

TEXT = (Path(__file__).resolve().parent.parent / "assets" / "sample_long.txt").read_text(encoding="utf-8")


def main() -> None:
    smollm = models.load(models.SMOLLM2)
    ids = [int(i) for i in activations.encode(smollm, TEXT, 200)[0]]
    print(f"prompt: {len(ids)} tokens")
    prediction.next_token_logits(smollm, ids)  # warm-up
    started = time.perf_counter()
    logits, past = prediction.next_token_logits(smollm, ids)
    prompt_seconds = time.perf_counter() - started
    steps = []
    for _ in range(10):
        ids.append(int(logits.argmax()))
        started = time.perf_counter()
        logits, past = prediction.next_token_logits(smollm, ids, past)
        steps.append(time.perf_counter() - started)
    cached = sorted(steps)[len(steps) // 2]
    started = time.perf_counter()
    prediction.next_token_logits(smollm, ids)
    uncached = time.perf_counter() - started
    print(f"whole prompt {prompt_seconds * 1000:.0f} ms; one step with the cached prefix {cached * 1000:.1f} ms (median of 10) "
          f"vs {uncached * 1000:.0f} ms recomputing the prefix ({uncached / cached:.1f}x)")
    started = time.perf_counter()
    prediction.generate(smollm, TEXT[:400], 12, temperature=0.8, top_p=0.9, seed=1)
    print(f"12 sampled tokens after a {len(activations.encode(smollm, TEXT[:400])[0])}-token prompt: "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
