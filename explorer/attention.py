"""Attention summaries that pages draw: rollout across layers, bins of a pooled overview, windows for zooming."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer import activations
from explorer.labels import token_labels, visible
from explorer.models import LoadedModel


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


WINDOW = 64  # tokens shown one by one; a longer text also gets a pooled overview


@dataclass
class AttentionView:
    """What the attention page draws for one text and layer, whichever head, window or focus is then chosen."""

    labels: list[str]  # (seq,) tokens as drawn (a byte piece shows its whole character, whitespace made visible)
    dropped_tokens: int  # cut at MAX_TOKENS
    layer: int
    pattern: np.ndarray  # (heads, seq, seq) float16: the layer's attention
    head_stats: np.ndarray  # (layers, heads, stats): every head's summary
    overview: np.ndarray | None  # (heads, bins, bins) attention mass per key bin, for texts over 2 * WINDOW tokens
    bin_labels: list[str]  # "start–end" token ranges of the bins
    rollout: np.ndarray  # (seq, seq) over tokens, or (bins, bins) over the overview's bins past FULL_LIMIT tokens

    @property
    def seq(self) -> int:
        return len(self.labels)

    def head(self, head: int | str) -> np.ndarray:
        """(seq, seq) float32: one head's pattern, or "mean" over heads."""
        return self.pattern.mean(0, dtype=np.float32) if head == "mean" else self.pattern[int(head)].astype(np.float32)


def view(loaded: LoadedModel, text: str, layer: int, cache: activations.CaptureCache | None = None) -> AttentionView:
    """One capture (through the engine's cache, or `cache`) and what the page derives from it, rollout included."""
    seq = len(activations.encode(loaded, text, MAX_TOKENS)[0])
    result = activations.capture(loaded, text, names_for_view(seq, layer), max_tokens=MAX_TOKENS,
                                 pooled_size=OVERVIEW_BINS, cache=cache)
    layers = loaded.info.layers
    pooled = [pooled_to_transitions(result[f"blocks.{i}.attn.pooled"], seq) for i in range(layers)]  # (heads, b, b) each
    bins = pooled[0].shape[-1]
    if seq <= FULL_LIMIT:
        means = np.stack([result[f"blocks.{i}.attn.pattern"].mean(0, dtype=np.float32) for i in range(layers)])
    else:  # long texts: rollout over the pooled overview's bins
        means = np.stack([layer_pooled.mean(0) for layer_pooled in pooled])  # (layers, bins, bins)
    return AttentionView(
        labels=[visible(label) for label in token_labels(result)],
        dropped_tokens=result.dropped_tokens,
        layer=layer,
        pattern=result[f"blocks.{layer}.attn.pattern"],
        head_stats=activations.head_stats_table(result),
        overview=pooled[layer] if seq > 2 * WINDOW else None,
        bin_labels=[f"{i * seq // bins}–{(i + 1) * seq // bins - 1}" for i in range(bins)],
        rollout=rollout(means),
    )
