"""Run a model on a text and keep only the named tensors asked for, with a memory and a disk cache.

Names (one scheme for every model):
    embed                       (seq, d)        token-embedding rows
    pos_embed                   (seq, d)        learned position rows (BERT family only; rotary models add none)
    blocks.{i}.resid_pre        (seq, d)        input to block i
    blocks.{i}.resid_post       (seq, d)        output of block i
    blocks.{i}.attn.pattern     (heads, seq, seq) float16
    blocks.{i}.attn.head_stats  (heads, 5)      entropy, to previous, to first, to self, to last (averaged over queries)
    blocks.{i}.attn.pooled      (heads, p, p)   pattern average-pooled to p x p bins (ask with pooled_size=p)
    final                       (seq, d)        last hidden state, after the final norm where the model has one
    next_logits                 (vocab,)        decoders only: the logits for the token after the text
    token_log_probs             (seq - 1,)      decoders only: log p(token i + 1 | tokens <= i), natural log
`*` in place of i means every layer.

No name holds (seq, vocab) logits: at 8,192 tokens they would be 1.6 GB. Log-probabilities of the text's own tokens
are computed from the final states a chunk of positions at a time and only the chosen token's value is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from explorer.architecture import LOGIT_CHUNK_BYTES, Architecture
from explorer.capture_attention import HEAD_STATS, CaptureRequest, capturing
from explorer.models import LoadedModel, cache_dir, device_of

CACHE_FORMAT = 1
_BLOCK_NAME = re.compile(r"^blocks\.(\d+|\*)\.(resid_pre|resid_post|attn\.pattern|attn\.head_stats|attn\.pooled)$")
_PLAIN_NAMES = {"embed", "pos_embed", "final", "next_logits", "token_log_probs"}
_DECODER_NAMES = {"next_logits", "token_log_probs"}
DISK_ENTRY_BYTES = 16 * 2**20  # larger captures (1,024 tokens of attention) stay in memory only: safetensors copies
# every array while writing, which put ~20 MB on the shared process's peak; recomputing one takes ~2 s


class CaptureError(ValueError):
    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind  # empty_text | bad_name | not_available
        self.detail = detail


@dataclass
class Capture:
    model_key: str
    text: str
    token_ids: np.ndarray  # (seq,) int64
    tokens: list[str]  # each token decoded on its own
    offsets: np.ndarray  # (seq, 2) character spans in `text`; (0, 0) for special tokens
    dropped_tokens: int  # tokens cut off at the model's maximum length
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    from_cache: str = ""  # "", "memory" or "disk"

    def __getitem__(self, name: str) -> np.ndarray:
        return self.tensors[name]

    @property
    def nbytes(self) -> int:
        """Everything the capture holds: arrays, the text and the decoded tokens (Python strings included)."""
        strings = sys.getsizeof(self.text) + sys.getsizeof(self.tokens) + sum(sys.getsizeof(t) for t in self.tokens)
        return sum(a.nbytes for a in self.tensors.values()) + self.token_ids.nbytes + self.offsets.nbytes + strings


def expand_names(names, layers: int) -> list[str]:
    expanded = []
    for name in names:
        match = _BLOCK_NAME.match(name)
        if match is None:
            if name not in _PLAIN_NAMES:
                raise CaptureError("bad_name", name)
            expanded.append(name)
            continue
        index, what = match.groups()
        indices = range(layers) if index == "*" else [int(index)]
        for i in indices:
            if not 0 <= i < layers:
                raise CaptureError("bad_name", f"{name}: the model has {layers} layers")
            expanded.append(f"blocks.{i}.{what}")
    return sorted(set(expanded), key=expanded.index)


def encode(loaded: LoadedModel, text: str, max_tokens: int | None = None):
    """Token ids, decoded tokens, character offsets and how many tokens were dropped at the length limit."""
    if not text or not text.strip():
        raise CaptureError("empty_text")
    limit = min(max_tokens or loaded.info.max_length, loaded.info.max_length)
    full = loaded.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids, offsets = full["input_ids"], full["offset_mapping"]
    dropped = max(0, len(ids) - limit)
    if dropped:
        encoded = loaded.tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=limit)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    tokens = [loaded.tokenizer.decode([token_id]) for token_id in ids]
    return np.asarray(ids, dtype=np.int64), tokens, np.asarray(offsets, dtype=np.int64).reshape(-1, 2), dropped


def run_capture(loaded: LoadedModel, text: str, names, max_tokens: int | None = None, pooled_size: int = 0) -> Capture:
    """One forward pass keeping only `names`; no cache (see `capture`)."""
    names = expand_names(names, loaded.info.layers)
    ids, tokens, offsets, dropped = encode(loaded, text, max_tokens)
    if _DECODER_NAMES & set(names) and loaded.info.family != "decoder":
        raise CaptureError("not_available", "logits (encoder)")
    request = CaptureRequest(
        pattern_layers=frozenset(int(n.split(".")[1]) for n in names if n.endswith("attn.pattern")),
        head_stats=any(n.endswith("attn.head_stats") for n in names),
        pooled_size=pooled_size if any(n.endswith("attn.pooled") for n in names) else 0,
    )
    model = loaded.model
    device = device_of(model)
    input_ids = torch.as_tensor(ids, device=device)[None]  # (1, seq)
    last = f"blocks.{loaded.info.layers - 1}.resid_post"
    final_norm = loaded.parts.final_norm if ({last, "final", "token_log_probs"} & set(names)) else None
    wants_hidden = any("resid" in n for n in names) or ("token_log_probs" in names and final_norm is None)
    kwargs = {"output_hidden_states": wants_hidden}
    if loaded.info.family == "decoder":
        kwargs["logits_to_keep"] = 1  # only the last position's logits are ever built by the forward
    around_norm: dict[str, torch.Tensor] = {}
    with loaded.lock, torch.inference_mode(), capturing(request):
        # transformers returns the last hidden state after the final norm: read the last block's own output at the
        # norm's input. The hook lives only inside the model's lock, so no other forward can run through it.
        # The norm is shared: a logit lens in another session may call it meanwhile, so only this thread's call counts.
        owner = threading.get_ident()
        handle = final_norm.register_forward_hook(
            lambda module, args, result: around_norm.update(before=args[0], after=result)
            if threading.get_ident() == owner else None) if final_norm else None
        try:
            output = model(input_ids, **kwargs)
        finally:
            if handle is not None:
                handle.remove()
        tensors = {}
        for name in names:
            tensors[name] = _pick(name, output, request, loaded.parts, input_ids, around_norm)
    return Capture(loaded.info.key, text, ids, tokens, offsets, dropped, tensors)


def _pick(name, output, request: CaptureRequest, parts: Architecture, input_ids, around_norm: dict) -> np.ndarray:
    if name == "embed":
        return _numpy(parts.embed(input_ids)[0])  # (seq, d)
    if name == "pos_embed":
        if parts.position_table is None:
            raise CaptureError("not_available", "pos_embed (this model adds no position vectors)")
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (seq,)
        return _numpy(parts.position_table(positions))  # (seq, d)
    if name == "final":
        if "after" in around_norm:
            return _numpy(around_norm["after"][0])  # (seq, d) what the unembedding reads
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None and output.hidden_states:
            hidden = output.hidden_states[-1]
        if hidden is None:
            raise CaptureError("not_available", "final")
        return _numpy(hidden[0])
    if name == "next_logits":
        return _numpy(output.logits[0, -1])  # (vocab,)
    if name == "token_log_probs":
        final = around_norm["after"][0] if "after" in around_norm else output.hidden_states[-1][0]  # (seq, d)
        return _numpy(chosen_log_probs(parts, final, input_ids[0]))
    _, index, what = name.split(".", 2)
    layer = int(index)
    if what == "resid_pre":
        return _numpy(output.hidden_states[layer][0])
    if what == "resid_post":
        if "before" in around_norm and layer == len(output.hidden_states) - 2:
            return _numpy(around_norm["before"][0])  # the last block's own output, before the final norm
        return _numpy(output.hidden_states[layer + 1][0])
    if what == "attn.pattern":
        return request.patterns[layer].numpy()
    if what == "attn.head_stats":
        return request.stats[layer].numpy()
    return request.pooled[layer].numpy()


def chosen_log_probs(parts: Architecture, final_states: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """log p(token_ids[i + 1] | ..i) from the final (normed) states: (seq - 1,).

    final_states: (seq, d); token_ids: (seq,). The vocabulary is walked in slices, every position at once, keeping a
    running log-sum-exp: only (seq, slice) logits exist at any moment (12.5 MB), and the head's weight is read once.
    (Slicing positions instead reads the whole 262,144 x 640 table once per slice: 4.0 s for 512 Gemma positions, 12
    at a time, against 1.2 s this way.) A head whose weight cannot be sliced (a quantized tensor) goes by positions.
    """
    following = token_ids[1:]  # (seq - 1,)
    states = final_states[:len(following)]  # (n, d)
    if not len(following):
        return final_states.new_zeros(0)
    weight = parts.unembed.weight
    if type(weight.data) is not torch.Tensor:
        return torch.cat([log_probs.gather(-1, following[start:start + len(log_probs), None])[:, 0]  # (chunk,)
                          for start, log_probs in parts.log_softmax_chunks(states)])
    rows = max(1, LOGIT_CHUNK_BYTES // (4 * len(states)))  # vocabulary entries per slice
    total = torch.full((len(states),), -torch.inf, device=states.device)  # (n,) log Σ exp(logit) so far
    chosen = torch.zeros(len(states), device=states.device)  # (n,) the next token's logit
    for first in range(0, weight.shape[0], rows):
        logits = parts.logits(states, slice(first, first + rows)).float()  # (n, rows)
        total = torch.logaddexp(total, torch.logsumexp(logits, dim=-1))
        inside = (following >= first) & (following < first + logits.shape[1])  # (n,)
        chosen[inside] = logits[inside, following[inside] - first]
    return chosen - total


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy()


# ---------------------------------------------------------------- cache

class CaptureCache:
    """In memory (LRU, bounded in bytes) in front of a folder of safetensors files (bounded in bytes)."""

    def __init__(self, folder: Path | None = None, memory_bytes: int | None = None, disk_bytes: int | None = None):
        self.folder = folder or cache_dir() / "captures"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.memory_bytes = memory_bytes or int(os.environ.get("EXPLORER_MEMORY_CACHE_MB", 64)) * 2**20
        self.disk_bytes = disk_bytes or int(os.environ.get("EXPLORER_DISK_CACHE_MB", 2048)) * 2**20
        self._memory: OrderedDict[str, Capture] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(loaded: LoadedModel, text: str, names, max_tokens, pooled_size) -> str:
        parts = [CACHE_FORMAT, loaded.info.key, loaded.fingerprint, loaded.info.dtype, text, sorted(names), max_tokens, pooled_size]
        return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()[:32]

    def get(self, key: str) -> Capture | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                found = self._memory[key]
                found.from_cache = "memory"
                return found
        found = self._read(self.folder / f"{key}.safetensors")
        if found is not None:
            self._remember(key, found)
            found.from_cache = "disk"
        return found

    def put(self, key: str, capture: Capture) -> None:
        self._remember(key, capture)
        if capture.nbytes <= DISK_ENTRY_BYTES:
            self._write(self.folder / f"{key}.safetensors", capture)
            self._trim_disk()

    def memory_used(self) -> int:
        with self._lock:
            return self._memory_bytes()

    def _memory_bytes(self) -> int:  # under self._lock
        return sum(c.nbytes for c in self._memory.values())

    def _remember(self, key: str, capture: Capture) -> None:
        with self._lock:
            self._memory[key] = capture
            self._memory.move_to_end(key)
            while self._memory_bytes() > self.memory_bytes and len(self._memory) > 1:
                self._memory.popitem(last=False)

    @staticmethod
    def _checksum(arrays: dict[str, np.ndarray]) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for name in sorted(arrays):
            digest.update(name.encode())
            digest.update(memoryview(np.ascontiguousarray(arrays[name])).cast("B"))  # the array's bytes, not a copy
        return digest.hexdigest()

    def _write(self, path: Path, capture: Capture) -> None:
        arrays = {f"t/{k}": np.ascontiguousarray(v) for k, v in capture.tensors.items()}
        arrays["token_ids"] = capture.token_ids
        arrays["offsets"] = capture.offsets
        meta = {"model_key": capture.model_key, "text": capture.text, "tokens": capture.tokens, "dropped": capture.dropped_tokens}
        metadata = {"meta": json.dumps(meta, ensure_ascii=False), "checksum": self._checksum(arrays)}
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")  # another process may write it too
        save_file(arrays, str(partial), metadata=metadata)
        os.replace(partial, path)

    def _read(self, path: Path) -> Capture | None:
        """A missing, truncated or altered file reads as a miss (and is removed), never as an error."""
        if not path.exists():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy") as handle:
                metadata = handle.metadata() or {}
            arrays = load_file(str(path))
            if metadata.get("checksum") != self._checksum(arrays):
                raise ValueError("checksum mismatch")
            meta = json.loads(metadata["meta"])
        except Exception:
            path.unlink(missing_ok=True)
            return None
        tensors = {k[2:]: v for k, v in arrays.items() if k.startswith("t/")}
        return Capture(meta["model_key"], meta["text"], arrays["token_ids"], meta["tokens"], arrays["offsets"], meta["dropped"], tensors)

    def _trim_disk(self) -> None:
        files = []  # (modified, bytes, path); a file another process removes meanwhile is skipped
        for path in self.folder.glob("*.safetensors"):
            try:
                found = path.stat()
            except FileNotFoundError:
                continue
            files.append((found.st_mtime, found.st_size, path))
        files.sort()
        total = sum(size for _, size, _ in files)
        while files and total > self.disk_bytes:
            _, size, oldest = files.pop(0)
            total -= size
            oldest.unlink(missing_ok=True)


_default_cache: CaptureCache | None = None


def default_cache() -> CaptureCache:
    global _default_cache
    if _default_cache is None:
        _default_cache = CaptureCache()
    return _default_cache


def capture(loaded: LoadedModel, text: str, names, max_tokens: int | None = None, pooled_size: int = 0,
            cache: CaptureCache | None = None) -> Capture:
    """`run_capture` behind the cache: same model weights, text and options give the stored arrays back."""
    cache = cache or default_cache()
    names = expand_names(names, loaded.info.layers)
    key = cache.key(loaded, text, names, max_tokens, pooled_size)
    found = cache.get(key)
    if found is not None:
        return found
    result = run_capture(loaded, text, names, max_tokens, pooled_size)
    cache.put(key, result)
    return result


def head_stats_table(capture_result: Capture) -> np.ndarray:
    """(layers, heads, stats) from the captured `blocks.{i}.attn.head_stats`."""
    layers = sorted(int(n.split(".")[1]) for n in capture_result.tensors if n.endswith("attn.head_stats"))
    return np.stack([capture_result[f"blocks.{i}.attn.head_stats"] for i in layers])


__all__ = ["Capture", "CaptureCache", "CaptureError", "HEAD_STATS", "capture", "run_capture", "expand_names", "encode"]
