"""Attention-page figures (issue 5), measured in one run on this machine.

    python3 bench/bench_attention.py

Prints: for attention.FULL_LIMIT tokens (every layer's pattern kept), the cost of switching layer or head (cached capture, new figures; no forward pass) and the
browser payload of every attention view; for 1,024 and attention.MAX_TOKENS tokens, the time to the first attention
view from cold and the capture's size.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import activations, attention, figures, models  # noqa: E402

TEXT = (Path(__file__).resolve().parent.parent / "assets" / "sample_long.txt").read_text(encoding="utf-8") * 8
WINDOW, GRID_WINDOW, LINES_WINDOW = 64, 40, 32  # as pages/attention.py


def views(result, layer: int, head: int, seq: int) -> list:
    """The figures pages/attention.py draws for one layer and head."""
    labels = [figures.visible(label) for label in activations.token_labels(result)]
    pattern = result[f"blocks.{layer}.attn.pattern"]  # (heads, seq, seq) float16
    chosen = pattern[head]
    pooled = attention.pooled_to_transitions(result[f"blocks.{layer}.attn.pooled"], seq)
    bins = [str(i) for i in range(pooled.shape[-1])]
    stats = activations.head_stats_table(result)
    return [
        figures.attention_heatmap(pooled[head], bins, bins, "overview", "q", "k"),
        figures.attention_heatmap(attention.window(chosen, 0, WINDOW).astype(np.float32), labels[:WINDOW], labels[:WINDOW], "head", "q", "k"),
        figures.heads_grid(attention.window(pattern, 0, GRID_WINDOW).astype(np.float32), [str(h) for h in range(len(pattern))], "grid"),
        figures.head_view(attention.window(chosen, 0, LINES_WINDOW).astype(np.float32), labels[:LINES_WINDOW], "lines"),
        figures.layer_head_heatmap(stats[:, :, 1], "roles", "layer", "head", "stat"),
    ]


def main() -> None:
    smollm = models.load(models.SMOLLM2)
    cache = activations.CaptureCache(Path(tempfile.mkdtemp()))
    full = attention.FULL_LIMIT
    ids = activations.tokenize(smollm, TEXT, full)[0]
    names = attention.names_for_view(len(ids), 0)
    started = time.perf_counter()
    activations.capture(smollm, TEXT, names, max_tokens=full, pooled_size=attention.OVERVIEW_BINS, cache=cache)
    first = time.perf_counter() - started
    switches = []
    for layer, head in ((3, 0), (10, 4), (20, 8), (29, 2), (0, 5)):
        started = time.perf_counter()
        result = activations.capture(smollm, TEXT, names, max_tokens=full, pooled_size=attention.OVERVIEW_BINS, cache=cache)
        payload = sum(len(figure.to_json()) for figure in views(result, layer, head, len(ids)))
        switches.append(time.perf_counter() - started)
    print(f"{full} tokens: first capture (all layers' patterns) {first:.2f} s; switching layer/head "
          f"{np.median(switches) * 1000:.0f} ms median ({first / np.median(switches):.0f}x less), no forward pass")
    print(f"{full} tokens: browser payload of the attention views {payload / 2**20:.2f} MB "
          f"(a BertViz-style JSON of every pattern would be ~{30 * 9 * full * full * 6 / 2**20:.0f} MB)")

    for length in (1024, attention.MAX_TOKENS):
        cold = activations.CaptureCache(Path(tempfile.mkdtemp()))
        started = time.perf_counter()
        ids = activations.tokenize(smollm, TEXT * 2, length)[0]
        result = activations.capture(smollm, TEXT * 2, attention.names_for_view(len(ids), 5), max_tokens=length,
                                     pooled_size=attention.OVERVIEW_BINS, cache=cold)
        [figure.to_json() for figure in views(result, 5, 0, len(ids))]
        print(f"{len(ids):,} tokens: first attention view from cold {time.perf_counter() - started:.2f} s, "
              f"capture holds {result.nbytes / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
