"""An attention function that reduces what a capture asks for while attention is computed.

Registered with transformers' AttentionInterface (and its mask with AttentionMaskInterface, without which the causal
mask would silently vanish). With no capture active it is plain `sdpa`. During a capture it works block by block over
query rows, skipping key blocks a causal mask hides, and keeps per-head statistics for every layer and the full
pattern only for the layers asked for: all layers' full attention never exists at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "explorer_capture"
QUERY_BLOCK = 32  # small enough that a block's scores stay in the L2 cache through softmax, stats and PV
HEAD_STATS = ("entropy", "previous", "first", "self", "last")  # per head, averaged over query rows


@dataclass
class CaptureRequest:
    """What one forward pass should keep; filled in as the layers run."""

    pattern_layers: frozenset[int] = frozenset()
    head_stats: bool = False
    pooled_size: int = 0  # >0: also keep each layer's pattern average-pooled to (heads, pooled, pooled)
    patterns: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (heads, seq, seq) float16
    stats: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (heads, len(HEAD_STATS)) float32
    pooled: dict[int, torch.Tensor] = field(default_factory=dict)  # layer -> (heads, p, p) float32

    @property
    def active(self) -> bool:
        return bool(self.pattern_layers) or self.head_stats or self.pooled_size > 0


_current = threading.local()


class capturing:
    """Context manager: attention calls on this thread report into `request`."""

    def __init__(self, request: CaptureRequest):
        self.request = request

    def __enter__(self) -> CaptureRequest:
        _current.request = self.request
        return self.request

    def __exit__(self, *exc) -> None:
        _current.request = None


def _repeat_kv(states: torch.Tensor, groups: int) -> torch.Tensor:
    # (batch, kv_heads, seq, dim) -> (batch, kv_heads * groups, seq, dim)
    if groups == 1:
        return states
    batch, kv_heads, seq, dim = states.shape
    return states[:, :, None].expand(batch, kv_heads, groups, seq, dim).reshape(batch, kv_heads * groups, seq, dim)


def capture_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                              sliding_window=None, **kwargs):
    """Every argument transformers passes is honoured: `softcap` (Gemma 2's tanh cap on the scores) and
    `sliding_window` (keys at least that far behind the query are hidden; transformers' mask usually carries the
    window already, this also covers a call without a mask)."""
    request: CaptureRequest | None = getattr(_current, "request", None)
    if request is None or not request.active:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      softcap=softcap, sliding_window=sliding_window, **kwargs)
    layer = int(module.layer_idx)
    batch, heads, seq, dim = query.shape  # batch is 1 for captures
    key = _repeat_kv(key, heads // key.shape[1])  # (1, heads, seq_k, dim)
    value = _repeat_kv(value, heads // value.shape[1])  # (1, heads, seq_k, dim)
    seq_k = key.shape[2]
    scaling = dim**-0.5 if scaling is None else scaling
    causal = bool(getattr(module, "is_causal", False)) and seq == seq_k
    keep_pattern = layer in request.pattern_layers
    query = query * scaling  # (1, heads, seq, dim): scaled once, not every score block
    output = torch.empty_like(query)  # (1, heads, seq, dim)
    pattern = query.new_zeros((heads, seq, seq_k), dtype=torch.float16) if keep_pattern else None
    stat_sums = torch.zeros((heads, len(HEAD_STATS)), dtype=torch.float32, device=query.device)
    pooled = _Pooler(request.pooled_size, heads, seq, seq_k, query.device) if request.pooled_size else None
    for start in range(0, seq, QUERY_BLOCK):
        stop = min(seq, start + QUERY_BLOCK)
        key_stop = stop if causal else seq_k  # keys after the last query of this block are masked anyway
        scores = torch.matmul(query[:, :, start:stop], key[:, :, :key_stop].transpose(2, 3)).float()
        # scores: (1, heads, block, key_stop)
        if softcap:
            scores = torch.tanh(scores / softcap) * softcap
        scores = _apply_mask(scores, attention_mask, causal, start, stop, key_stop, sliding_window)
        best_scores, best_keys = scores.max(dim=-1)  # (1, heads, block)
        probs = torch.softmax(scores, dim=-1)  # (1, heads, block, key_stop)
        output[:, :, start:stop] = torch.matmul(probs.to(value.dtype), value[:, :, :key_stop])
        rows = probs[0]  # (heads, block, key_stop)
        # entropy = log Z - sum_j p_j s_j, and log Z = s_max - log p_max (masked scores are finite, their p is 0)
        log_norm = best_scores[0] - torch.log(rows.gather(-1, best_keys[0][..., None])[..., 0])  # (heads, block)
        entropy = log_norm - torch.linalg.vecdot(rows, scores[0])  # (heads, block)
        positions = torch.arange(start, stop, device=rows.device)  # (block,)
        local = positions - start  # (block,)
        previous = rows[:, local[1:] if start == 0 else local, (positions[1:] if start == 0 else positions) - 1]
        last_key = positions if causal else torch.full_like(positions, seq_k - 1)
        stat_sums += torch.stack(
            [
                entropy.sum(-1),
                previous.sum(-1),
                rows[:, :, 0].sum(-1),
                rows[:, local, positions].sum(-1),
                rows[:, local, last_key].sum(-1),
            ],
            dim=-1,
        )  # (heads, stats)
        if pattern is not None:
            pattern[:, start:stop, :key_stop] = rows
        if pooled is not None:
            pooled.add(rows, start, stop, key_stop)
    if request.head_stats:
        counts = torch.tensor([seq, max(seq - 1, 1), seq, seq, seq], dtype=torch.float32, device=query.device)
        request.stats[layer] = (stat_sums / counts).cpu()  # (heads, stats)
    if pattern is not None:
        request.patterns[layer] = pattern.cpu()
    if pooled is not None:
        request.pooled[layer] = pooled.result().cpu()
    return output.transpose(1, 2).contiguous(), None  # (1, seq, heads, dim)


MASKED = -1e30  # finite, so that 0 * score stays 0 in the entropy sum


def _apply_mask(scores, attention_mask, causal: bool, start: int, stop: int, key_stop: int,
                window: int | None = None) -> torch.Tensor:
    # scores: (1, heads, block, key_stop); the mask is boolean (True = may attend), additive, or None
    if window and attention_mask is None:
        queries = torch.arange(start, stop, device=scores.device)[:, None]  # (block, 1)
        keys = torch.arange(key_stop, device=scores.device)[None, :]  # (1, key_stop)
        scores.masked_fill_(queries - keys >= window, MASKED)
    if attention_mask is not None:
        block_mask = attention_mask[:, :, start:stop, :key_stop]
        if block_mask.dtype == torch.bool:
            return scores.masked_fill_(~block_mask, MASKED)
        return scores.add_(block_mask.float()).clamp_(min=MASKED)
    if causal:  # only the square at the diagonal has keys after their query
        block = stop - start
        above = torch.ones((block, block), dtype=torch.bool, device=scores.device).triu_(1)  # (block, block)
        scores[..., start:stop].masked_fill_(above, MASKED)
    return scores


class _Pooler:
    """Average-pools an attention pattern into (heads, size, size) bins as query blocks stream past."""

    def __init__(self, size: int, heads: int, seq: int, seq_k: int, device):
        self.size = min(size, seq)
        self.size_k = min(size, seq_k)
        self.row_bin = torch.arange(seq, device=device) * self.size // seq  # (seq,)
        self.col_bin = torch.arange(seq_k, device=device) * self.size_k // seq_k  # (seq_k,)
        self.sums = torch.zeros((heads, self.size, self.size_k), dtype=torch.float32, device=device)
        self.row_counts = torch.bincount(self.row_bin, minlength=self.size).float()  # (size,)
        self.col_counts = torch.bincount(self.col_bin, minlength=self.size_k).float()  # (size_k,)

    def add(self, rows: torch.Tensor, start: int, stop: int, key_stop: int) -> None:
        heads = rows.shape[0]
        by_col = torch.zeros((heads, stop - start, self.size_k), device=rows.device)  # (heads, block, size_k)
        by_col.index_add_(2, self.col_bin[:key_stop], rows)
        self.sums.index_add_(1, self.row_bin[start:stop], by_col)

    def result(self) -> torch.Tensor:
        return self.sums / (self.row_counts[:, None] * self.col_counts[None, :])  # (heads, size, size_k)


AttentionInterface.register(NAME, capture_attention_forward)
AttentionMaskInterface.register(NAME, sdpa_mask)
