"""Foundation figures, measured in one run on this machine (issue 2).

    python3 bench/bench_foundation.py [--quick]

Prints: SmolLM2 load from GGUF vs from the converted cache; capture time as a ratio to a plain forward pass and the
extra memory it takes, at 128, 512 and 2,048 tokens; cache-hit time; resident memory with both bundled models loaded.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import subprocess
import threading
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import activations, models  # noqa: E402

PROCESS = psutil.Process()
TEXT = (Path(__file__).resolve().parent.parent / "assets" / "sample_long.txt").read_text(encoding="utf-8")


class PeakRSS:
    """Samples resident memory every millisecond while the block runs."""

    def __enter__(self):
        self.start = self.peak = PROCESS.memory_info().rss
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, PROCESS.memory_info().rss)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()

    @property
    def extra_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def timed(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def long_text(loaded, tokens: int) -> str:
    text = TEXT
    while len(loaded.tokenizer(text)["input_ids"]) < tokens:
        text += "\n" + TEXT
    return text


def both_models_peak_rss() -> float:
    """Measured in a fresh process, as a server would start: both models loaded, one short capture on each."""
    script = (
        "import resource, sys; sys.path.insert(0, '.');"
        "from explorer import models, activations;"
        "s = models.load(models.SMOLLM2); m = models.load(models.MINILM);"
        "activations.run_capture(s, '안녕하세요 hello', ['next_logits', 'blocks.*.attn.head_stats']);"
        "activations.run_capture(m, '안녕하세요 hello', ['final', 'blocks.*.attn.pattern']);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the GGUF conversion")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {models.pick_device()}")

    if not args.quick:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            models.convert_smollm2_gguf(Path(scratch) / "smollm2")
            gguf_seconds = time.perf_counter() - started
    models.load(models.SMOLLM2)  # make sure the converted cache exists (and warm the file cache)
    smollm = models.load(models.SMOLLM2)
    cache_seconds = smollm.load_seconds
    if not args.quick:
        print(f"SmolLM2 load: GGUF {gguf_seconds:.1f} s (dequantize + save) vs converted cache {cache_seconds:.2f} s "
              f"-> {gguf_seconds / cache_seconds:.0f}x faster")
    else:
        print(f"SmolLM2 load from converted cache: {cache_seconds:.2f} s")
    print(f"peak resident memory of a fresh process with both bundled models loaded and used: {both_models_peak_rss():.0f} MB")

    names = ["blocks.*.resid_post", "blocks.*.attn.head_stats", "blocks.10.attn.pattern"]
    print("\ncapture = every layer's hidden states + every head's statistics + layer 10's full pattern")
    print(f"{'tokens':>7} {'plain s':>8} {'capture s':>9} {'ratio':>6} {'kept MB':>8} {'extra peak RSS MB':>18}")
    for tokens in (128, 512, 2048):
        text = long_text(smollm, tokens)
        ids = torch.as_tensor(activations.encode(smollm, text, tokens)[0])[None]  # (1, tokens)

        def plain():
            with torch.inference_mode():
                smollm.model(ids, logits_to_keep=1)

        def captured():
            activations.run_capture(smollm, text, names, max_tokens=tokens)

        repeats = 7 if tokens < 2048 else 3
        plain(), captured()  # warm-up
        plain_seconds, capture_seconds = timed(plain, repeats), timed(captured, repeats)
        gc.collect()
        with PeakRSS() as plain_memory:
            plain()
        gc.collect()
        with PeakRSS() as capture_memory:
            result = activations.run_capture(smollm, text, names, max_tokens=tokens)
        kept_mb = result.nbytes / 2**20
        del result
        print(f"{tokens:>7} {plain_seconds:>8.3f} {capture_seconds:>9.3f} {capture_seconds / plain_seconds:>6.2f} "
              f"{kept_mb:>8.0f} {capture_memory.extra_mb - plain_memory.extra_mb:>18.0f}")

    with tempfile.TemporaryDirectory() as scratch:
        cache = activations.CaptureCache(Path(scratch))
        text = long_text(smollm, 512)
        key_names = ["blocks.*.resid_post", "blocks.*.attn.head_stats", "blocks.10.attn.pattern"]
        started = time.perf_counter()
        activations.capture(smollm, text, key_names, max_tokens=512, cache=cache)
        miss = time.perf_counter() - started
        memory_hit = timed(lambda: activations.capture(smollm, text, key_names, max_tokens=512, cache=cache), 20)
        disk_hit = timed(lambda: activations.capture(smollm, text, key_names, max_tokens=512,
                                                     cache=activations.CaptureCache(Path(scratch))), 3)
    print(f"\ncache at 512 tokens: miss {miss * 1000:.0f} ms, memory hit {memory_hit * 1000:.2f} ms "
          f"({miss / memory_hit:.0f}x), disk hit {disk_hit * 1000:.0f} ms ({miss / disk_hit:.1f}x)")


if __name__ == "__main__":
    main()
