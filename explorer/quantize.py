"""Quantization, measured: weights stored in fewer bits, and what that costs the next token.

Weight-only schemes on every Linear inside the blocks (attention and MLP matrices); embeddings, norms and the
unembedding stay as they are (shared with the loaded model, never copied). One library builds every integer copy:
torchao's weight-only tensors (round-to-nearest with a scale per tensor, row or group), so the page's grid, errors
and next-token numbers all describe the copies it runs.
"""

from __future__ import annotations

import logging
import math
import mmap
import struct
from functools import lru_cache
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch
from transformers.pytorch_utils import Conv1D

from explorer import activations, architecture, embeddings, memory, prediction, process
from explorer.activations import CaptureError, chosen_log_probs
from explorer.architecture import matrix_weight
from explorer.adapting import frozen_view
from explorer.models import GGUF_FILES, LoadedModel

SCHEMES = ("fp32", "bf16", "fp16", "int8_tensor", "int8_channel", "int4_group")
GROUP_SIZES = (16, 32, 64)  # each divides every bundled width (SmolLM2 576, 1536; MiniLM 384, 1536; Gemma 640, 2048)
MAX_TOKENS = 2_048


@dataclass(frozen=True)
class Scheme:
    name: str  # one of SCHEMES
    group_size: int = 32  # int4 only
    symmetric: bool = True  # int4 only: asymmetric adds a zero point per group

    @property
    def bits(self) -> int:
        return {"fp32": 32, "bf16": 16, "fp16": 16, "int8_tensor": 8, "int8_channel": 8, "int4_group": 4}[self.name]

    @property
    def dtype(self) -> torch.dtype | None:
        """The float a dtype cast stores its matrices in (bf16, fp16); None for fp32 (the model's own matrices, as it
        stores them) and the integer schemes."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def library(self) -> str:
        """Who builds the copy: a PyTorch dtype cast, or torchao's weight-only tensors (int8 runs with an int8
        matrix kernel on a CPU; int4 keeps each code in an int8 and expands it for the matrix multiply)."""
        return "torchao" if self.bits < 16 else "torch"

    @property
    def key(self) -> str:
        return f"{self.name}-g{self.group_size}-{'sym' if self.symmetric else 'asym'}" if self.name == "int4_group" \
            else self.name


class CastLinear(torch.nn.Module):
    """A Linear (or GPT-2's transposed Conv1D) whose weight is stored in a narrower float (bf16, fp16) and widened to
    the input's dtype for each forward: what a dtype cast saves on a CPU is memory, not time."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.weight = torch.nn.Parameter(matrix_weight(module).detach().to(dtype), requires_grad=False)  # (out, in)
        self.bias = module.bias  # shared, never copied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight.to(x.dtype), self.bias)


def as_linear(module: torch.nn.Module) -> torch.nn.Linear:
    """The plain float32 nn.Linear torchao quantizes: the module itself; GPT-2's Conv1D with the same weight seen
    transposed and the same bias (no copy); a bfloat16 matrix (Gemma 3's) widened, one block's at a time."""
    if type(module) is torch.nn.Linear:
        return module
    weight = matrix_weight(module).detach()  # (out, in): a transposed view, or a float32 copy of a bfloat16 weight
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")  # nothing allocated
    linear.weight = torch.nn.Parameter(weight, requires_grad=False)
    linear.bias = module.bias
    return linear


def dequantized(module: torch.nn.Module) -> torch.Tensor:
    """(out, in) float32: the weight a copy's matrix multiplies by, whoever stored it."""
    weight = module.weight
    if type(weight.data) is not torch.Tensor:  # a torchao tensor: int codes, scales, zero points
        return weight.dequantize().float()
    return matrix_weight(module).float()


def grid_levels(module: torch.nn.Module, scheme: Scheme) -> np.ndarray:
    """The values a copy's quantized matrix can take, from the scales torchao stored: per-tensor int8's levels, or
    the 16 levels of the int4 group that holds the largest weight (each group has its own)."""
    stored = module.weight
    if scheme.name not in ("int8_tensor", "int4_group") or type(stored.data) is torch.Tensor:
        raise CaptureError("not_available", f"grid of {scheme.name}")
    low, high = (-128, 127) if scheme.name == "int8_tensor" else (-8, 7)
    if scheme.name == "int8_tensor":
        return float(stored.scale.flatten()[0]) * np.arange(low, high + 1)
    row, column = divmod(int(dequantized(module).abs().argmax()), stored.shape[1])
    group = column // (stored.shape[1] // stored.scale.shape[1])  # this matrix's own group size (see group_for)
    zero = int(stored.zero_point[row, group]) if stored.zero_point is not None else 0
    return float(stored.scale[row, group]) * (np.arange(low, high + 1) - zero)


def grid_of(loaded: LoadedModel, scheme: Scheme, matrix: str) -> np.ndarray:
    """grid_levels of one block matrix (named as block_matrices names it) in the scheme's copy, the copy held only
    while they are read: a page run that held it to its end left no room for the other copies its tables build."""
    with memory.BUDGET.run():
        copy = quantized(loaded, scheme)
        return grid_levels(dict(block_matrices(copy.loaded.model, copy.loaded.parts.blocks))[matrix], scheme)


def packed_bytes(parameters: int, scheme: Scheme) -> int:
    """int4 as a file format packs it (GGUF's Q4_0/Q4_1): two codes a byte, an fp16 scale per group, and for
    asymmetric groups an fp16 minimum too. torchao keeps each int4 code in an int8 on this CPU, so its copy is
    twice that; this is the arithmetic, for the table."""
    groups = parameters // scheme.group_size
    return parameters // 2 + 2 * groups * (1 if scheme.symmetric else 2)


def block_matrices(model: torch.nn.Module, blocks) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every Linear/Conv1D inside the blocks, e.g. ('3.self_attn.q_proj', …)."""
    found = []
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, (torch.nn.Linear, Conv1D, CastLinear)):
                found.append((f"{index}.{name}", module))
    return found


@dataclass
class QuantizedModel:
    loaded: LoadedModel  # the loaded model seen through the quantized copy: usable by every engine function
    scheme: Scheme
    library: str  # who built it: "torch" (a dtype cast) or "torchao" (int8 and int4 weight-only tensors)
    matrix_bytes: int  # the quantized matrices as stored
    matrix_parameters: int
    other_bytes: int  # everything else (embeddings, norms, unembedding) at its own precision
    packed_bytes: int  # the matrices as a nibble-packed file would hold them (int4), else matrix_bytes
    seconds: float  # to build
    own_bytes: int  # what the copy adds to the process: its matrices, less those it shares with its model (fp32's
    #   all; on Gemma, whose model stores them in bf16, the bf16 copy's too)


OWN_BYTES = {32: 0, 16: 2, 8: 1, 4: 1}  # bytes per matrix weight a copy adds where it does not share its model's
#   (fp32 is the model's own; int4 sits in int8)
_building = threading.Lock()  # one copy built at a time: each build's float temporaries are a few hundred MB


def copy_key(loaded: LoadedModel, scheme: Scheme) -> tuple:
    return ("quantized", loaded.info.key, scheme.key, loaded.fingerprint)


def quantized(loaded: LoadedModel, scheme: Scheme) -> QuantizedModel:
    """The loaded model with its block matrices quantized: built when first asked for, shared by everyone, and kept
    under the memory budget (its own matrices counted; the rest is its model's, so it is dropped with its model).
    Building holds the shared model's lock only while its modules are copied (frozen_view), not while rounding."""
    def build() -> QuantizedModel:
        with _building:
            return _build(loaded, scheme)

    matrices = block_matrices(loaded.model, loaded.parts.blocks)
    parameters = sum(module.weight.numel() for _, module in matrices if module.weight.dtype != scheme.dtype)
    return memory.BUDGET.get_or_build(copy_key(loaded, scheme), build, parameters * OWN_BYTES[scheme.bits],
                                      measure=lambda copy: copy.own_bytes, parent=("model", loaded.info.key))


def _build(loaded: LoadedModel, scheme: Scheme) -> QuantizedModel:
    started = time.perf_counter()
    view = frozen_view(loaded)
    view_blocks = _same_modules(view, loaded.model, list(loaded.parts.blocks))
    matrices = block_matrices(view, view_blocks)
    matrix_parameters = sum(module.weight.numel() for _, module in matrices)  # not matrix_weight: a float32 copy of bf16
    cast = scheme.dtype
    for name, module in matrices:
        index, dotted = name.split(".", 1)
        if cast is not None and module.weight.dtype != cast:  # Gemma, whose matrices are bf16, is its own bf16 copy
            _set_module(view_blocks[int(index)], dotted, CastLinear(module, cast))
    if scheme.bits < 16:
        _torchao(view_blocks, scheme)
    matrices = block_matrices(view, view_blocks)
    matrix_bytes = sum(memory.stored_bytes(module.weight) for _, module in matrices)
    models_own = {module.weight.data_ptr() for _, module in block_matrices(loaded.model, loaded.parts.blocks)}
    own = sum(memory.stored_bytes(module.weight) for _, module in matrices
              if type(module.weight.data) is not torch.Tensor or module.weight.data_ptr() not in models_own)
    other = sum(p.numel() * p.element_size() for p in view.parameters()
                if type(p.data) is torch.Tensor and not any(p is m.weight for _, m in matrices))  # shared: not copied
    copy = replace(loaded, model=view.eval(), fingerprint=f"{loaded.fingerprint}+{scheme.key}",
                   parts=architecture.find(view), lock=threading.Lock())  # its own modules, for hooks
    packed = packed_bytes(matrix_parameters, scheme) if scheme.name == "int4_group" else matrix_bytes
    return QuantizedModel(copy, scheme, scheme.library, matrix_bytes, matrix_parameters, other, packed,
                          time.perf_counter() - started, own)


def group_for(width: int, group_size: int) -> int:
    """The group a matrix of `width` input columns is quantized in: the chosen size, or where it does not divide the
    width, the largest size that divides both (every width fits; 16, 32 and 64 divide each bundled model's)."""
    return math.gcd(width, group_size)


def _torchao(blocks: list[torch.nn.Module], scheme: Scheme) -> None:
    """Replace every Linear weight in the (view's) blocks by torchao's weight-only tensor: int8 with one scale per
    row or per tensor, or int4 with a scale (and, asymmetric, a zero point) per group."""
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it warns about its CUDA-only libraries on every CPU
    from torchao.quantization import (Int8WeightOnlyConfig, IntxWeightOnlyConfig, MappingType, PerGroup, PerRow,
                                      PerTensor, quantize_)

    def int4(group: int):
        return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(group),
                                    mapping_type=MappingType.SYMMETRIC if scheme.symmetric else MappingType.ASYMMETRIC)

    int8 = Int8WeightOnlyConfig(granularity=PerRow() if scheme.name == "int8_channel" else PerTensor(),
                                set_inductor_config=False)  # leave torch's global compiler settings alone
    for block in blocks:
        for name, module in block_matrices(block, [block]):
            _set_module(block, name.split(".", 1)[1], as_linear(module))
        if scheme.name != "int4_group":
            quantize_(block, int8)
        else:
            by_group: dict[int, set[int]] = {}
            for _, module in block_matrices(block, [block]):
                by_group.setdefault(group_for(matrix_weight(module).shape[1], scheme.group_size), set()).add(id(module))
            for group, members in by_group.items():
                quantize_(block, int4(group), filter_fn=lambda module, name, members=members: id(module) in members)
        process.release_freed_memory()  # its float temporaries: else the heap grows ~17 MB a block before any trim


def _same_modules(view: torch.nn.Module, original: torch.nn.Module, originals: list) -> list:
    """The view's modules that sit where `originals` sit in the original model."""
    names = {id(module): name for name, module in original.named_modules()}
    found = dict(view.named_modules())
    return [found[names[id(module)]] for module in originals]


def _set_module(root: torch.nn.Module, dotted: str, replacement: torch.nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, replacement)


# ---------------------------------------------------------------- measurements

def one_at_a_time(loaded: LoadedModel, schemes: list[Scheme], measure: Callable[[QuantizedModel], Any]) -> list:
    """measure(copy) for each scheme's copy, each held only while it is measured: tables over every scheme keep
    their numbers, and the budget may drop one copy to make room for the next (Gemma's six do not fit at once)."""
    resident = {r.key for r in memory.BUDGET.residents()}
    order = sorted(range(len(schemes)), key=lambda i: copy_key(loaded, schemes[i]) not in resident)  # kept ones first:
    found = {}  # in a fixed order the least recently used copy is always the next one needed (measured: 17 rebuilds)
    for index in order:
        with memory.BUDGET.run():
            found[index] = measure(quantized(loaded, schemes[index]))
    return [found[index] for index in range(len(schemes))]


@dataclass(frozen=True)
class Facts:
    """A copy's size and provenance, without the copy."""
    scheme: str
    library: str
    matrix_bytes: int
    matrix_parameters: int
    other_bytes: int
    packed_bytes: int
    seconds: float


def facts_of(copy: QuantizedModel) -> Facts:
    return Facts(copy.scheme.key, copy.library, copy.matrix_bytes, copy.matrix_parameters, copy.other_bytes,
                 copy.packed_bytes, copy.seconds)


def errors_of(loaded: LoadedModel) -> Callable[[QuantizedModel], list[float]]:
    """||W − W_copy|| / ||W|| for every block matrix of a copy of `loaded` (the ones the page runs)."""
    originals = block_matrices(loaded.model, loaded.parts.blocks)
    return lambda copy: [float((matrix_weight(original).float() - dequantized(module)).norm() / matrix_weight(original).norm())
                         for (_, original), (_, module) in zip(originals, block_matrices(copy.loaded.model, copy.loaded.parts.blocks))]


@dataclass
class Comparison:
    kl: float  # mean over positions of KL(fp32 ‖ scheme) of the next-token distribution, in nats
    top1: float  # share of positions whose most likely next token is the same
    kl_last: float  # at the last position only


def _final(loaded: LoadedModel, text: str, tokens: int) -> activations.Capture:
    """The text's first `tokens` tokens and the states the unembedding reads (after the final norm), from the
    engine's capture and its cache: no hidden states of every layer, no logits."""
    return activations.capture(loaded, text, ["final"], min(tokens, MAX_TOKENS))


def compare(reference: LoadedModel, others: list[LoadedModel], text: str, tokens: int = MAX_TOKENS) -> list[Comparison]:
    """Next-token distributions of each of `others` against `reference` over the text's first `tokens` tokens,
    a chunk of positions at a time (12.5 MB of logits: never tokens × vocabulary); the reference is run and
    unembedded once."""
    first = torch.from_numpy(_final(reference, text, tokens)["final"])  # (seq, d)
    seconds = [torch.from_numpy(_final(other, text, tokens)["final"]) for other in others]  # (seq, d) each
    parts, seq = reference.parts, len(first)
    kl_sums, same, last = [0.0] * len(others), [0] * len(others), [0.0] * len(others)
    with torch.inference_mode():
        chunk = parts.positions_per_chunk()
        for start, p in parts.log_softmax_chunks(first, chunk):  # p: (chunk, vocab)
            for index, second in enumerate(seconds):
                q = next(parts.log_softmax_chunks(second[start:start + chunk], chunk))[1]  # (chunk, vocab)
                kl = (p.exp() * (p - q)).sum(-1)  # (chunk,)
                kl_sums[index] += float(kl.sum())
                same[index] += int((p.argmax(-1) == q.argmax(-1)).sum())
                last[index] = float(kl[-1])
    return [Comparison(kl_sums[i] / seq, same[i] / seq, last[i]) for i in range(len(others))]


def perplexity(loaded: LoadedModel, text: str, tokens: int = MAX_TOKENS) -> float:
    """exp(mean negative log-likelihood) over the text's first `tokens` tokens, a chunk of positions at a time."""
    found = _final(loaded, text, tokens)
    if len(found.token_ids) < 2:
        raise CaptureError("empty_text", "perplexity needs two tokens")
    with torch.inference_mode():
        log_probs = chosen_log_probs(loaded.parts, torch.from_numpy(found["final"]),
                                     torch.as_tensor(found.token_ids))  # (seq - 1,)
    return float(torch.exp(-log_probs.mean()))


@dataclass
class Behaviour:
    """What one copy does with the learner's text, against the loaded model."""
    scheme: str  # the scheme's key
    kl: float | None = None  # decoders: mean KL of the next-token distribution, in nats
    top1: float | None = None  # decoders: share of positions with the same most likely token
    perplexity: float | None = None  # decoders: on a reference text
    continuation: str | None = None  # decoders: ten greedy tokens
    cosine: float | None = None  # encoders: sentence vector against the loaded model's


def behaviour_of(loaded: LoadedModel, text: str, tokens: int, reference_text: str,
                 reference_tokens: int) -> Callable[[QuantizedModel], Behaviour]:
    """What a copy of `loaded` does with the learner's text (its first `tokens` tokens): a decoder's next-token KL
    and top-1 agreement, perplexity on `reference_text` and a greedy continuation; an encoder's sentence-vector
    cosine."""
    if loaded.info.family != "decoder":
        reference = embeddings.sentence_embeddings(loaded, [text])[0]  # (d,) unit vector
        return lambda c: Behaviour(c.scheme.key, cosine=float(embeddings.sentence_embeddings(c.loaded, [text])[0] @ reference))

    def measured(copy: QuantizedModel) -> Behaviour:
        compared = compare(loaded, [copy.loaded], text, tokens)[0]  # the reference's states come from the cache
        continuation, _ = prediction.generate(copy.loaded, text, 10, max_tokens=tokens)
        return Behaviour(copy.scheme.key, compared.kl, compared.top1,
                         perplexity(copy.loaded, reference_text, reference_tokens),
                         copy.loaded.tokenizer.decode(continuation).rstrip("\ufffd"))  # a cut syllable

    return measured


def behaviour(loaded: LoadedModel, schemes: list[Scheme], text: str, tokens: int, reference_text: str,
              reference_tokens: int) -> list[Behaviour]:
    """Each scheme's copy on the learner's text."""
    return one_at_a_time(loaded, schemes, behaviour_of(loaded, text, tokens, reference_text, reference_tokens))


@dataclass(frozen=True)
class Surveyed:
    """Everything the quantization page shows of one scheme's copy, measured while the copy was built once."""
    facts: Facts
    errors: list[float]  # per block matrix
    behaviour: Behaviour  # on the page's own sample text
    seconds: float  # per 64-token forward


def survey(loaded: LoadedModel, schemes: list[Scheme], text: str, tokens: int, reference_text: str,
           reference_tokens: int, report: Callable[[list[Surveyed]], None] = lambda done: None) -> list[Surveyed]:
    """Each scheme's copy built once and measured for every table of the page (sizes, matrix errors, behaviour on
    `text`, speed); `report(those measured so far)` after each. Tables that each walked every scheme rebuilt the
    copies the budget had dropped in between: Gemma's page took 24-55 s on a fresh process, measured."""
    errors, behaved = errors_of(loaded), behaviour_of(loaded, text, tokens, reference_text, reference_tokens)
    done: list[Surveyed] = []

    def measured(copy: QuantizedModel) -> Surveyed:
        found = Surveyed(facts_of(copy), errors(copy), behaved(copy), seconds_per_forward(copy.loaded))
        done.append(found)
        report(list(done))
        return found

    return one_at_a_time(loaded, schemes, measured)


def seconds_per_forward(loaded: LoadedModel, tokens: int = 64, repeats: int = 3) -> float:
    ids = torch.arange(100, 100 + tokens)[None]  # (1, tokens)
    best = float("inf")
    with loaded.lock, torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            loaded.model(ids, logits_to_keep=1)
            best = min(best, time.perf_counter() - started)
    return best


@lru_cache(maxsize=4)
def gguf_types(key: str) -> list[dict]:
    """A bundled GGUF file's own storage (SmolLM2: Q4_1; Gemma 3: Q4_K_M, a mix of Q4_K, Q5_0, Q6_K and Q8_0): each
    tensor type, how many tensors, block size and bytes per block. Empty for a model that is not one."""
    path = GGUF_FILES[key]() if key in GGUF_FILES else None
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:
        return []
    if path is None:
        return []
    counts: dict[str, list] = {}
    for type_id, elements in gguf_tensors(path):
        kind = GGMLQuantizationType(type_id)
        block, block_bytes = GGML_QUANT_SIZES[kind]
        entry = counts.setdefault(kind.name, [0, 0, 0])
        entry[0] += 1
        entry[1] += elements
        entry[2] += elements // block * block_bytes
    rows = []
    for name, (tensors, elements, size) in counts.items():
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
        rows.append(dict(type=name, tensors=tensors, parameters=elements, bytes=size, block_size=block,
                         bytes_per_block=block_bytes, bits_per_weight=8 * size / elements))
    return rows


_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes
_STRING, _ARRAY = 8, 9


def gguf_tensors(path) -> list[tuple[int, int]]:
    """(ggml type, elements) of every tensor in a GGUF file, read from its header alone. `gguf.GGUFReader` parses
    every metadata value into Python objects first (Gemma's 262,144-entry vocabulary: 9.6 s); this skips them."""
    with open(path, "rb") as file:
        data = memoryview(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
    if bytes(data[:4]) != b"GGUF":
        raise CaptureError("not_available", f"{path} is not a GGUF file")
    tensors, fields = struct.unpack_from("<QQ", data, 8)
    at = 24

    def skip(kind: int, at: int) -> int:
        if kind == _STRING:
            return at + 8 + struct.unpack_from("<Q", data, at)[0]
        if kind == _ARRAY:
            item, count = struct.unpack_from("<IQ", data, at)
            at += 12
            if item in _FIXED:
                return at + count * _FIXED[item]
            for _ in range(count):
                at = skip(item, at)
            return at
        return at + _FIXED[kind]

    for _ in range(fields):
        at = skip(_STRING, at)  # the key
        kind = struct.unpack_from("<I", data, at)[0]
        at = skip(kind, at + 4)
    found = []
    for _ in range(tensors):
        at = skip(_STRING, at)  # the name
        dims = struct.unpack_from("<I", data, at)[0]
        shape = struct.unpack_from(f"<{dims}Q", data, at + 4)
        type_id = struct.unpack_from("<I", data, at + 4 + 8 * dims)[0]
        at += 4 + 8 * dims + 4 + 8  # the type, then the data offset
        found.append((type_id, math.prod(shape)))
    return found
