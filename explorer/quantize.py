"""Quantization, measured: weights stored in fewer bits, and what that costs the next token.

Weight-only schemes on every Linear inside the blocks (attention and MLP matrices); embeddings, norms and the
unembedding stay as they are (shared with the loaded model, never copied). Each quantized matrix keeps its codes
in the bits the scheme names and is expanded to float32 for each forward, which is what "weight-only" means on a CPU
without special kernels: smaller, not faster. The rounding is round-to-nearest, written out below in a few lines.
"""

from __future__ import annotations

import logging
from functools import lru_cache
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from transformers.pytorch_utils import Conv1D

from explorer import activations, architecture, process
from explorer.activations import CaptureError, chosen_log_probs
from explorer.architecture import matrix_weight
from explorer.adapting import frozen_view
from explorer.models import LoadedModel, smollm2_gguf

SCHEMES = ("fp32", "bf16", "fp16", "int8_tensor", "int8_channel", "int4_group")
GROUP_SIZES = (32, 64, 192)  # each divides the widths of both bundled models (576, 1536; 384, 1536)
CHUNK = 64  # positions unembedded at once when comparing distributions or computing perplexity
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
    def library(self) -> str:
        """Who builds the copy: a PyTorch dtype cast, torchao's int8 weight-only tensors (they run on a CPU, with an
        int8 matrix kernel), or the round-to-nearest below (torchao's int4 needs kernels this CPU build lacks)."""
        return {"int8_tensor": "torchao", "int8_channel": "torchao", "int4_group": "rtn"}.get(self.name, "torch")

    @property
    def key(self) -> str:
        return f"{self.name}-g{self.group_size}-{'sym' if self.symmetric else 'asym'}" if self.name == "int4_group" \
            else self.name


@dataclass
class QuantizedWeight:
    codes: torch.Tensor  # float32/bf16/fp16 values, int8 codes, or int4 codes packed two per uint8
    scales: torch.Tensor | None  # float16: one per tensor, per output row, or per group
    zeros: torch.Tensor | None  # uint8 zero points (asymmetric int4)
    shape: tuple[int, int]  # (out, in)
    scheme: Scheme

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.codes, self.scales, self.zeros) if t is not None)

    def dequantize(self) -> torch.Tensor:
        """(out, in) float32."""
        name = self.scheme.name
        if name in ("fp32", "bf16", "fp16"):
            return self.codes.float()
        if name.startswith("int8"):
            return self.codes.float() * self.scales.float()  # scales (1, 1) or (out, 1)
        out, inner = self.shape
        low, high = (self.codes & 0x0F).to(torch.int16), (self.codes >> 4).to(torch.int16)  # (out*in/2,) each
        codes = torch.stack([low, high], dim=-1).reshape(out, inner // self.scheme.group_size, self.scheme.group_size)
        offset = 8 if self.scheme.symmetric else self.zeros.to(torch.int16).unsqueeze(-1)  # (out, groups, 1)
        return ((codes - offset).float() * self.scales.float().unsqueeze(-1)).reshape(out, inner)


def quantize_weight(weight: torch.Tensor, scheme: Scheme) -> QuantizedWeight:
    """Round-to-nearest. weight: (out, in) float."""
    weight = weight.detach().float()
    shape = tuple(weight.shape)
    if scheme.name == "fp32":
        return QuantizedWeight(weight, None, None, shape, scheme)
    if scheme.name in ("bf16", "fp16"):
        return QuantizedWeight(weight.to(torch.bfloat16 if scheme.name == "bf16" else torch.float16), None, None,
                               shape, scheme)
    if scheme.name.startswith("int8"):
        largest = weight.abs().amax() if scheme.name == "int8_tensor" else weight.abs().amax(dim=1)  # () or (out,)
        scales = _stored_scales(largest / 127).reshape(-1, 1)  # (1, 1) or (out, 1)
        codes = torch.round(weight / scales).clamp(-127, 127).to(torch.int8)  # (out, in)
        return QuantizedWeight(codes, scales.half(), None, shape, scheme)
    group = scheme.group_size
    if shape[1] % group:
        raise CaptureError("not_available", f"int4 groups of {group} in a matrix {shape[1]} wide")
    grouped = weight.reshape(shape[0], shape[1] // group, group)  # (out, groups, group)
    if scheme.symmetric:
        scales = _stored_scales(grouped.abs().amax(-1) / 7)  # (out, groups): codes -8..7, stored +8
        codes = torch.round(grouped / scales.unsqueeze(-1)).clamp(-8, 7) + 8
        zeros = None
    else:
        low, high = grouped.amin(-1), grouped.amax(-1)  # (out, groups)
        scales = _stored_scales((high - low) / 15)
        zeros = torch.round(-low / scales).clamp(0, 15)  # (out, groups)
        codes = (torch.round(grouped / scales.unsqueeze(-1)) + zeros.unsqueeze(-1)).clamp(0, 15)
        zeros = zeros.to(torch.uint8)
    flat = codes.to(torch.uint8).reshape(-1, 2)  # (out*in/2, 2)
    packed = flat[:, 0] | (flat[:, 1] << 4)  # two 4-bit codes per byte
    return QuantizedWeight(packed, scales.half(), zeros, shape, scheme)


def _stored_scales(scales: torch.Tensor) -> torch.Tensor:
    """Scales as they will be stored (float16), back in float32: rounding against the stored scale keeps every
    weight within half a step of what dequantize() returns."""
    return scales.clamp(min=1e-7).half().float()


class QuantizedLinear(torch.nn.Module):
    """A Linear (or GPT-2's transposed Conv1D) whose weight is stored quantized and expanded for each forward."""

    def __init__(self, module: torch.nn.Module, scheme: Scheme):
        super().__init__()
        self.quantized = quantize_weight(matrix_weight(module), scheme)
        self.bias = module.bias  # shared, never copied

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.quantized.dequantize().to(x.dtype), self.bias)


def grid_levels(weight: torch.Tensor, scheme: Scheme) -> np.ndarray:
    """The values a quantized weight can take: per-tensor int8's 255 levels, or the 16 levels of the int4 group
    that holds the largest weight (each group has its own)."""
    quantized = quantize_weight(weight, scheme)
    if scheme.name == "int8_tensor":
        return float(quantized.scales) * np.arange(-127, 128)
    if scheme.name != "int4_group":
        raise CaptureError("not_available", f"grid of {scheme.name}")
    row, column = divmod(int(weight.abs().argmax()), weight.shape[1])
    group = column // scheme.group_size
    scale = float(quantized.scales[row, group])
    zero = 8 if scheme.symmetric else int(quantized.zeros[row, group])
    return scale * (np.arange(16) - zero)


def block_matrices(model: torch.nn.Module, blocks) -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every Linear/Conv1D inside the blocks, e.g. ('3.self_attn.q_proj', …)."""
    found = []
    for index, block in enumerate(blocks):
        for name, module in block.named_modules():
            if isinstance(module, (torch.nn.Linear, Conv1D)):
                found.append((f"{index}.{name}", module))
    return found


@dataclass
class QuantizedModel:
    loaded: LoadedModel  # the loaded model seen through the quantized copy: usable by every engine function
    scheme: Scheme
    library: str  # who built it: "torch" (a dtype cast), "torchao" or "rtn" (quantize_weight)
    matrix_bytes: int  # the quantized matrices as stored
    matrix_parameters: int
    other_bytes: int  # everything else (embeddings, norms, unembedding) at its own precision
    seconds: float  # to build


_built: dict[tuple[str, str], QuantizedModel] = {}
_building = threading.Lock()


def quantized(loaded: LoadedModel, scheme: Scheme) -> QuantizedModel:
    """The loaded model with its block matrices quantized: built once per process and scheme, shared by everyone.
    Building holds the shared model's lock only while its modules are copied (frozen_view), not while rounding."""
    key = (loaded.fingerprint, scheme.key)
    with _building:
        if key not in _built:
            started = time.perf_counter()
            view = frozen_view(loaded)
            view_blocks = _same_modules(view, loaded.model, list(loaded.parts.blocks))
            matrices = block_matrices(view, view_blocks)
            matrix_parameters = sum(module.weight.numel() for _, module in matrices)
            library = scheme.library
            if library == "torchao" and not all(type(module) is torch.nn.Linear for _, module in matrices):
                library = "rtn"  # GPT-2's Conv1D: torchao quantizes nn.Linear only
            if library == "torchao":
                matrix_bytes = _torchao_int8(view_blocks, scheme)
            else:
                matrix_bytes = 0
                for name, module in matrices:
                    replacement = QuantizedLinear(module, scheme)
                    _set_module(view_blocks[int(name.split(".")[0])], name.split(".", 1)[1], replacement)
                    matrix_bytes += replacement.quantized.nbytes
            other = sum(p.numel() * p.element_size() for p in view.parameters()
                        if type(p.data) is torch.Tensor)  # the shared embeddings, norms and biases
            copy = replace(loaded, model=view.eval(), fingerprint=f"{loaded.fingerprint}+{scheme.key}",
                           parts=architecture.find(view), lock=threading.Lock())  # its own modules, for hooks
            _built[key] = QuantizedModel(copy, scheme, library, matrix_bytes,
                                         matrix_parameters, other, time.perf_counter() - started)
    return _built[key]


def _torchao_int8(blocks: list[torch.nn.Module], scheme: Scheme) -> int:
    """Replace every Linear weight in the (view's) blocks by torchao's int8 weight-only tensor, one scale per row or
    per tensor; returns the bytes it stores (int8 codes, float32 scales, int8 zero points)."""
    logging.getLogger("torchao").setLevel(logging.ERROR)  # it warns about its CUDA-only libraries on every CPU
    from torchao.quantization import Int8WeightOnlyConfig, PerRow, PerTensor, quantize_

    config = Int8WeightOnlyConfig(granularity=PerRow() if scheme.name == "int8_channel" else PerTensor(),
                                  set_inductor_config=False)  # leave torch's global compiler settings alone
    stored = 0
    for block in blocks:
        quantize_(block, config)
        process.release_freed_memory()  # its float temporaries: else the heap grows ~17 MB a block before any trim
        for module in block.modules():
            if isinstance(module, torch.nn.Linear):
                stored += sum(t.numel() * t.element_size() for t in (module.weight.qdata, module.weight.scale,
                                                                      module.weight.zero_point) if t is not None)
    return stored


def _same_modules(view: torch.nn.Module, original: torch.nn.Module, originals: list) -> list:
    """The view's modules that sit where `originals` sit in the original model."""
    names = {id(module): name for name, module in original.named_modules()}
    found = dict(view.named_modules())
    return [found[names[id(module)]] for module in originals]


def _set_module(root: torch.nn.Module, dotted: str, replacement: torch.nn.Module) -> None:
    parent, _, leaf = dotted.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, replacement)


# ---------------------------------------------------------------- measurements

def relative_errors(loaded: LoadedModel, schemes: list[Scheme]) -> tuple[list[str], np.ndarray]:
    """||W − dequantize(quantize(W))|| / ||W|| for every block matrix: names, (schemes, matrices)."""
    matrices = block_matrices(loaded.model, loaded.parts.blocks)
    errors = np.zeros((len(schemes), len(matrices)))
    for column, (_, module) in enumerate(matrices):
        weight = matrix_weight(module)  # (out, in)
        norm = float(weight.norm())
        for row, scheme in enumerate(schemes):
            errors[row, column] = float((weight - quantize_weight(weight, scheme).dequantize()).norm()) / norm
    return [name for name, _ in matrices], errors


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
    CHUNK positions at a time (never tokens × vocabulary); the reference is run and unembedded once."""
    first = torch.from_numpy(_final(reference, text, tokens)["final"])  # (seq, d)
    seconds = [torch.from_numpy(_final(other, text, tokens)["final"]) for other in others]  # (seq, d) each
    unembed, seq = reference.parts.unembed, len(first)
    kl_sums, same, last = [0.0] * len(others), [0] * len(others), [0.0] * len(others)
    with torch.inference_mode():
        for start in range(0, seq, CHUNK):
            p = torch.log_softmax(unembed(first[start:start + CHUNK]).float(), -1)  # (chunk, vocab)
            for index, second in enumerate(seconds):
                q = torch.log_softmax(unembed(second[start:start + CHUNK]).float(), -1)  # (chunk, vocab)
                kl = (p.exp() * (p - q)).sum(-1)  # (chunk,)
                kl_sums[index] += float(kl.sum())
                same[index] += int((p.argmax(-1) == q.argmax(-1)).sum())
                last[index] = float(kl[-1])
    return [Comparison(kl_sums[i] / seq, same[i] / seq, last[i]) for i in range(len(others))]


def perplexity(loaded: LoadedModel, text: str, tokens: int = MAX_TOKENS) -> float:
    """exp(mean negative log-likelihood) over the text's first `tokens` tokens, CHUNK positions at a time."""
    found = _final(loaded, text, tokens)
    if len(found.token_ids) < 2:
        raise CaptureError("empty_text", "perplexity needs two tokens")
    with torch.inference_mode():
        log_probs = chosen_log_probs(loaded.parts.unembed, torch.from_numpy(found["final"]),
                                     torch.as_tensor(found.token_ids), CHUNK)  # (seq - 1,)
    return float(torch.exp(-log_probs.mean()))


def seconds_per_forward(loaded: LoadedModel, tokens: int = 64, repeats: int = 3) -> float:
    ids = torch.arange(100, 100 + tokens)[None]  # (1, tokens)
    best = float("inf")
    with loaded.lock, torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            loaded.model(ids, logits_to_keep=1)
            best = min(best, time.perf_counter() - started)
    return best


@lru_cache(maxsize=1)
def gguf_types() -> list[dict]:
    """The bundled SmolLM2 file's own storage: each tensor type, how many tensors, block size and bytes per block."""
    path = smollm2_gguf()
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader
    except ImportError:
        return []
    if path is None:
        return []
    counts: dict[str, list] = {}
    for tensor in GGUFReader(str(path)).tensors:
        entry = counts.setdefault(tensor.tensor_type.name, [0, 0, 0])
        entry[0] += 1
        entry[1] += int(tensor.n_elements)
        entry[2] += int(tensor.n_bytes)
    rows = []
    for name, (tensors, elements, size) in counts.items():
        block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
        rows.append(dict(type=name, tensors=tensors, parameters=elements, bytes=size, block_size=block,
                         bytes_per_block=block_bytes, bits_per_weight=8 * size / elements))
    return rows
