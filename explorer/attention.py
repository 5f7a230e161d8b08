"""Attention summaries that pages draw: rollout across layers, bins of a pooled overview, windows for zooming."""

from __future__ import annotations

import numpy as np


def rollout(patterns: np.ndarray, residual_weight: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, 2020): how much each position draws on each input through all layers.

    patterns: (layers, seq, seq) head-averaged attention, rows summing to 1. Each layer's matrix is mixed with the
    identity for the residual path, re-normalised, and the layers are multiplied bottom to top.
    Returns (seq, seq) with rows summing to 1.
    """
    layers, seq, _ = patterns.shape
    identity = np.eye(seq)
    result = identity
    for layer in range(layers):
        mixed = residual_weight * identity + (1 - residual_weight) * patterns[layer].astype(np.float64)  # (seq, seq)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result  # (seq, seq)
    return result


def pooled_to_transitions(pooled: np.ndarray, seq: int) -> np.ndarray:
    """A pooled overview (..., bins, bins) of mean weights -> rows that sum to 1 over key bins (mass per bin)."""
    bins = pooled.shape[-1]
    counts = np.bincount(np.arange(seq) * bins // seq, minlength=bins)  # (bins,) keys per bin
    return pooled * counts  # (..., bins, bins)


def window(pattern: np.ndarray, start: int, size: int) -> np.ndarray:
    """The square of a (..., seq, seq) pattern for queries and keys start..start+size."""
    stop = min(pattern.shape[-1], start + size)
    return pattern[..., start:stop, start:stop]


FULL_LIMIT = 256  # up to here every layer's full pattern is kept (SmolLM2: 35 MB), so changing layer runs nothing
MAX_TOKENS = 1024  # the page reads at most this many tokens: one layer's full pattern is then 9 x 1024² x 2 B = 19 MB
# (at 2,048 tokens a first view took the shared process ~400 MB above its resting size, measured by bench_memory)
OVERVIEW_BINS = 64


def names_for_view(seq: int, layer: int) -> list[str]:
    """What the attention page captures for a text of `seq` tokens with `layer` selected."""
    pattern = "blocks.*.attn.pattern" if seq <= FULL_LIMIT else f"blocks.{layer}.attn.pattern"
    return ["blocks.*.attn.head_stats", "blocks.*.attn.pooled", pattern]
