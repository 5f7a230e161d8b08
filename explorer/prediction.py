"""Next-token prediction: sampling filters, step-by-step generation, the logit lens, surprisal.

Plain numpy in and out where possible; the model runs under its lock like every capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.activations import CaptureError, chosen_log_probs, run_capture, encode
from explorer.models import LoadedModel, device_of
from explorer.labels import token_label, token_labels


MAX_TOKENS = 512  # the prediction page reads at most this many tokens of a text (the rest is cut, with a notice);
# at 1,024 a first view took the shared process ~300 MB above its resting size (bench_memory), at 512 ~150 MB


@dataclass
class Distribution:
    probs: np.ndarray  # (vocab,) after temperature, before filtering
    kept: np.ndarray  # (vocab,) bool: survives top-k and top-p
    sampling_probs: np.ndarray  # (vocab,) renormalised over `kept`; one-hot on the argmax when greedy


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def filter_distribution(logits: np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Distribution:
    """Temperature, then top-k, then top-p (the smallest set of most likely tokens whose mass reaches p).

    temperature 0 means greedy: all mass on the most likely token.
    """
    logits = np.asarray(logits, dtype=np.float64)  # (vocab,)
    if temperature <= 0:
        probs = softmax(logits)
        greedy = np.zeros_like(probs)
        greedy[int(np.argmax(logits))] = 1.0
        return Distribution(probs, greedy > 0, greedy)
    probs = softmax(logits / temperature)  # (vocab,)
    order = np.argsort(-probs, kind="stable")  # (vocab,) most likely first
    keep_count = len(order) if top_k <= 0 else min(top_k, len(order))
    if top_p < 1.0:
        ranked = probs[order]  # (vocab,)
        mass_before = np.concatenate([[0.0], np.cumsum(ranked)[:-1]])  # mass of the tokens ranked above each one
        keep_count = min(keep_count, int(np.sum(mass_before < top_p - 1e-12)))  # rounding must not add a token
    kept = np.zeros(len(probs), dtype=bool)
    kept[order[: max(1, keep_count)]] = True
    sampling = np.where(kept, probs, 0.0)
    return Distribution(probs, kept, sampling / sampling.sum())


def next_token_logits(loaded: LoadedModel, ids: list[int], past=None, hold=None):
    """Logits for the token after `ids`; pass `past` (the returned cache) to reuse the prefix already computed.
    The forward runs inside `hold()` (default: the model's lock; the lab passes its hooks, which hold the lock)."""
    device = device_of(loaded.model)
    new_ids = ids if past is None else ids[past.get_seq_length():]
    with (hold or (lambda: loaded.lock))(), torch.inference_mode():
        output = loaded.model(torch.as_tensor([new_ids], device=device), past_key_values=past, use_cache=True,
                              logits_to_keep=1)
    return output.logits[0, -1].float().cpu().numpy(), output.past_key_values  # (vocab,), cache


def generate(loaded: LoadedModel, text: str, steps: int, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             seed: int = 0, max_tokens: int | None = None) -> tuple[list[int], list[float]]:
    """Append `steps` tokens to the text; the prompt is its first `max_tokens` tokens (default: MAX_TOKENS, as the
    page reads it)."""
    ids = [int(i) for i in encode(loaded, text, max_tokens or MAX_TOKENS)[0]]
    return generate_ids(loaded, ids, steps, temperature, top_k, top_p, seed)


def generate_ids(loaded: LoadedModel, ids: list[int], steps: int, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0, stop_ids=frozenset(), hold=None) -> tuple[list[int], list[float]]:
    """Append up to `steps` tokens one at a time with a cached prefix, stopping after any of `stop_ids`;
    returns the new ids and the probability each had."""
    chances: list[float] = []
    added = list(stream_ids(loaded, ids, steps, temperature, top_k, top_p, seed, stop_ids, chances, hold))
    return added, chances


def stream_ids(loaded: LoadedModel, ids: list[int], steps: int, temperature: float = 0.0, top_k: int = 0,
               top_p: float = 1.0, seed: int = 0, stop_ids=frozenset(), chances: list | None = None, hold=None):
    """The same, one id at a time as each is chosen (a page can show an answer as it is written)."""
    ids = list(ids)
    generator = np.random.default_rng(seed)
    past = None
    for _ in range(steps):
        logits, past = next_token_logits(loaded, ids, past, hold)
        distribution = filter_distribution(logits, temperature, top_k, top_p)
        if temperature <= 0:
            chosen = int(np.argmax(distribution.sampling_probs))
        else:
            chosen = int(generator.choice(len(distribution.sampling_probs), p=distribution.sampling_probs))
        ids.append(chosen)
        if chances is not None:
            chances.append(float(distribution.probs[chosen]))
        yield chosen
        if chosen in stop_ids:
            return


def logit_lens(loaded: LoadedModel, hidden_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each layer's residual stream: the final norm then the unembedding, as if that layer were the last.

    hidden_states: (layers, seq, d) -> top token ids (layers, seq) and their probabilities (layers, seq).
    One layer and one chunk of positions at a time (sized by bytes): (seq, vocab) logits never exist, whatever seq.
    """
    parts = loaded.parts
    if parts.unembed is None:
        raise CaptureError("not_available", "logits (encoder)")
    device = device_of(loaded.model)
    top_ids, top_probs = [], []
    with loaded.lock, torch.inference_mode():  # the model's modules run under its lock, like every forward
        for layer_states in hidden_states:
            states = torch.as_tensor(layer_states, device=device, dtype=loaded.dtype)  # (seq, d)
            normed = parts.final_norm(states) if parts.final_norm is not None else states  # (seq, d)
            bests = [log_probs.max(dim=-1) for _, log_probs in parts.log_softmax_chunks(normed)]  # (chunk,) each
            top_ids.append(np.concatenate([b.indices.cpu().numpy() for b in bests] or [np.zeros(0, np.int64)]))
            top_probs.append(np.concatenate([b.values.exp().cpu().numpy() for b in bests] or [np.zeros(0, np.float32)]))
    return np.stack(top_ids), np.stack(top_probs)


def surprisal(log_probs: np.ndarray) -> np.ndarray:
    """Bits of surprise from natural-log probabilities (the capture's `token_log_probs`): -log2 p, same shape."""
    return -np.asarray(log_probs, dtype=np.float64) / np.log(2)


def perplexity(bits: np.ndarray) -> float:
    return float(2 ** np.mean(bits)) if len(bits) else float("nan")


@dataclass
class TextReading:
    """What the prediction page shows about a text that no widget changes: computed once per text and kept small.

    Nothing here grows with the vocabulary times the length: the next token's logits, one number per token, and the
    logit lens's top token for the last `lens_positions` positions of every layer.
    """

    token_ids: np.ndarray  # (seq,)
    token_labels: list[str]  # (seq,) a byte piece shows the whole character it belongs to
    offsets: np.ndarray  # (seq, 2) character spans
    dropped_tokens: int
    next_logits: np.ndarray  # (vocab,) float32
    bits: np.ndarray  # (seq - 1,) surprisal of tokens 1..seq-1
    lens_ids: np.ndarray  # (layers, n) top token of each layer at the last n positions
    lens_probs: np.ndarray  # (layers, n)
    lens_labels: list[list[str]]  # (layers, n) those tokens as text


def read_text(loaded: LoadedModel, text: str, max_tokens: int = MAX_TOKENS, lens_positions: int = 16) -> TextReading:
    """One forward over `text`: the next-token logits, each token's surprisal and the logit lens (decoders only).

    The log-probabilities are computed after the forward's hidden states are gone, from the final states alone, so
    the two peaks of memory never add up.
    """
    if loaded.info.family != "decoder":
        raise CaptureError("not_available", "logits (encoder)")
    result = run_capture(loaded, text, ["next_logits", "final", "blocks.*.resid_post"], max_tokens=max_tokens)
    states = np.stack([result[f"blocks.{i}.resid_post"][-lens_positions:] for i in range(loaded.info.layers)])  # (layers, n, d)
    lens_ids, lens_probs = logit_lens(loaded, states)  # (layers, n) each
    ids, offsets, labels, final = result.token_ids, result.offsets, token_labels(result), result["final"]  # final: (seq, d)
    next_logits, dropped = result["next_logits"], result.dropped_tokens
    del result, states  # every layer's states for every position: only the last few were needed
    device = device_of(loaded.model)
    with loaded.lock, torch.inference_mode():
        log_probs = chosen_log_probs(loaded.parts, torch.as_tensor(final, device=device, dtype=loaded.dtype),
                                     torch.as_tensor(ids, device=device))  # (seq - 1,)
    return TextReading(ids, labels, offsets, dropped, next_logits, surprisal(log_probs.float().cpu().numpy()),
                       lens_ids, lens_probs, [[token_label(loaded.tokenizer, int(i)) for i in row] for row in lens_ids])


def complete_characters(tokenizer, waiting: list[int], token_id: int) -> str | None:
    """Add a generated token to the ones `waiting` for the rest of their character (a byte-level token can end a third
    of the way into a Hangul syllable). Returns the text once every character is whole (and empties `waiting`), else
    None (the token waits with the others)."""
    piece = tokenizer.decode(waiting + [token_id])
    if piece.endswith("\ufffd"):  # an incomplete UTF-8 character: wait for the bytes that finish it
        waiting.append(token_id)
        return None
    waiting.clear()
    return piece


def character_groups(text: str, offsets: np.ndarray, values: np.ndarray) -> list[tuple[str, float]]:
    """Merge neighbouring tokens that share characters (byte pieces of one syllable or emoji) into one group.

    offsets: (seq, 2) character spans of tokens 1..seq; values: (seq,) per-token numbers, summed within a group
    (surprisal in bits adds up). Returns (text covered, total) per group; special tokens (empty spans) are skipped.
    """
    groups: list[list] = []  # [start, end, total]
    for (start, end), value in zip(offsets.tolist(), values.tolist()):
        if end <= start:
            continue
        if groups and start < groups[-1][1]:  # overlaps the previous token: the same character(s)
            groups[-1][1] = max(groups[-1][1], end)
            groups[-1][2] += value
        else:
            if groups and start > groups[-1][1]:  # characters no token claims (spaces folded into a token) stay with the previous group
                groups[-1][1] = start
            groups.append([start, end, value])
    return [(text[start:end], total) for start, end, total in groups]
