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
GRID_WINDOW, LINES_WINDOW = 40, 32  # as pages/attention.py


def figures_of(shown: attention.AttentionView, head: int) -> list:
    """The figures pages/attention.py draws from a view for one head (the window at the start)."""
    chosen, labels, window = shown.head(head), shown.labels, attention.WINDOW
    drawn = [
        figures.attention_heatmap(attention.window(chosen, 0, window), labels[:window], labels[:window], "head", "q", "k"),
        figures.heads_grid(attention.window(shown.pattern, 0, GRID_WINDOW).astype(np.float32),
                           [str(h) for h in range(len(shown.pattern))], "grid"),
        figures.head_view(attention.window(chosen, 0, LINES_WINDOW), labels[:LINES_WINDOW], "lines"),
        figures.layer_head_heatmap(shown.head_stats[:, :, 1], "roles", "layer", "head", "stat"),
        figures.attention_heatmap(attention.window(shown.rollout, 0, window), labels[:window], labels[:window], "r", "q", "k"),
    ]
    if shown.overview is not None:
        drawn.append(figures.attention_heatmap(shown.overview[head], shown.bin_labels, shown.bin_labels, "overview", "q", "k"))
    return drawn


def main() -> None:
    smollm = models.load(models.SMOLLM2)
    cache = activations.CaptureCache(Path(tempfile.mkdtemp()))
    full = attention.FULL_LIMIT
    text = smollm.tokenizer.decode(activations.encode(smollm, TEXT, full)[0])  # about `full` tokens
    started = time.perf_counter()
    shown = attention.view(smollm, text, 0, cache=cache)
    first = time.perf_counter() - started
    switches = []
    for layer, head in ((3, 0), (10, 4), (20, 8), (29, 2), (0, 5)):
        started = time.perf_counter()
        shown = attention.view(smollm, text, layer, cache=cache)
        payload = sum(len(figure.to_json()) for figure in figures_of(shown, head))
        switches.append(time.perf_counter() - started)
    print(f"{shown.seq} tokens: first view (all layers' patterns) {first:.2f} s; switching layer/head "
          f"{np.median(switches) * 1000:.0f} ms median ({first / np.median(switches):.0f}x less), no forward pass")
    print(f"{shown.seq} tokens: browser payload of the attention views {payload / 2**20:.2f} MB "
          f"(a BertViz-style JSON of every pattern would be ~{30 * 9 * shown.seq ** 2 * 6 / 2**20:.0f} MB)")

    for length in (512, attention.MAX_TOKENS):
        text = smollm.tokenizer.decode(activations.encode(smollm, TEXT * 2, length)[0])
        started = time.perf_counter()
        shown = attention.view(smollm, text, 5, cache=activations.CaptureCache(Path(tempfile.mkdtemp())))
        [figure.to_json() for figure in figures_of(shown, 0)]
        print(f"{shown.seq:,} tokens: first attention view from cold {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
