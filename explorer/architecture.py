"""Where a model keeps the parts the views need, found once when it loads.

Every engine module asks the `Architecture` instead of reading attribute names, which differ between families:
Llama and Qwen2 say `embed_tokens`, `layers`, `self_attn`, `norm`, `rotary_emb`; GPT-2 says `wte`, `wpe`, `h`, `attn`,
`ln_f`; BERT says `embeddings.word_embeddings`, `embeddings.position_embeddings`, `encoder.layer`, `attention`.
A part a family does not have is None, and the view that needs it says so in a sentence.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from explorer import process

POSITION_KINDS = ("learned", "rotary", "none")
LOGIT_CHUNK_BYTES = 64 * 49_152 * 4  # float32 logits unembedded at once: 12.5 MB (64 SmolLM2 positions, 12 of Gemma's)  # learned rows added to the input; rotated queries and keys; nothing


WIDENED_ELEMENTS = 2_048 * 640  # values of a bfloat16 matrix widened to float32 at a time: 5 MB (2,048 rows of Gemma's
#   table, or a whole block matrix), in one buffer per thread, which stays in the CPU's cache


def table_product(states: torch.Tensor, table: torch.Tensor, bias: torch.Tensor | None = None,
                  widened: bool = False) -> torch.Tensor:
    """states (..., d) @ table (rows, d)ᵀ (+ bias) -> (..., rows) float32, whatever dtype the table is stored in.
    A bfloat16 table (Gemma 3's, narrowed at load) is multiplied in bfloat16 where the CPU does that natively, and
    elsewhere (or where `widened` is asked for) widened a slice at a time and multiplied in float32. Measured on
    Gemma's 262,144 x 640 table on a 2-core CPU without bfloat16 instructions (bench_weights_at_rest.py), 1 / 16 / 64
    positions: float32 table 49 / 151 / 298 ms, widened 34-40 / 103 / 233 ms, multiplied in bfloat16 19 / 305 / 1,292
    ms. Widened for every count of positions, so that a position's logits do not depend on how many are computed with
    it (one position in bfloat16 and many widened moved a streamed answer's probabilities by up to 0.014 from one
    forward's)."""
    if table.dtype == torch.bfloat16 and states.device.type == "cpu" and (widened or not process.native_bf16()):
        differentiated = torch.is_grad_enabled() and (states.requires_grad or table.requires_grad)
        product = (_WidenedProduct.apply if differentiated else _widened_product)(states.float(), table)  # autograd's
        #   Function only where a backward will run: it costs ~75 us a call, which a block matrix pays on every forward
    else:
        product = torch.nn.functional.linear(states.to(table.dtype), table).float()
    return product if bias is None else product + bias.float()


class _WidenedProduct(torch.autograd.Function):
    """x @ tableᵀ with the table widened a slice at a time into one reused float32 buffer, forward and backward:
    neither keeps a float32 copy of the table (autograd would otherwise save every widened slice for a training's
    backward), and no slice is allocated anew (the app maps blocks of 4 MB or more on their own, process.py, and a new
    5 MB slice each time faulted a whole float32 table's pages in per call: Gemma's logit lens 22 s instead of 3)."""

    @staticmethod
    def forward(ctx, states, table):  # states (..., d) float32, table (rows, d) bfloat16 -> (..., rows)
        ctx.save_for_backward(states if ctx.needs_input_grad[1] else None, table)
        return _widened_product(states, table)

    @staticmethod
    def backward(ctx, grad):  # grad (..., rows)
        states, table = ctx.saved_tensors
        flat_grad = grad.reshape(-1, len(table))  # (n, rows)
        to_states = to_table = None
        if ctx.needs_input_grad[0]:
            to_states = flat_grad.new_zeros(len(flat_grad), table.shape[1])  # (n, d)
            for start, widened in _widened_slices(table):
                to_states.addmm_(flat_grad[:, start:start + len(widened)], widened)
            to_states = to_states.view(*grad.shape[:-1], table.shape[1])
        if ctx.needs_input_grad[1]:
            to_table = (flat_grad.T @ states.reshape(-1, table.shape[1])).to(table.dtype)  # (rows, d)
        return to_states, to_table


def _widened_product(states: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """states (..., d) float32 @ table (rows, d)ᵀ bfloat16 -> (..., rows) float32, a widened slice at a time."""
    flat = states.reshape(-1, states.shape[-1])  # (n, d)
    if len(table) <= WIDENED_ELEMENTS // table.shape[1]:  # one slice (a block matrix): its product is the result
        (_, widened), = _widened_slices(table)
        return (flat @ widened.T).view(*states.shape[:-1], len(table))
    product = flat.new_empty(len(flat), len(table))  # (n, rows)
    for start, widened in _widened_slices(table):  # widened: (slice, d) float32
        product[:, start:start + len(widened)] = flat @ widened.T
    return product.view(*states.shape[:-1], len(table))


def _widened_slices(table: torch.Tensor):
    """(start, table[start:start + rows] in float32) over the table, every slice in this thread's one buffer: a new
    5 MB buffer per call is mapped and faulted in anew (process.tune_allocator), 2 ms against 0.13 ms for the copy
    itself, measured, which a block matrix pays on every forward."""
    width = table.shape[1]
    step = max(1, WIDENED_ELEMENTS // width)  # rows per slice
    buffer = _buffer(min(step, len(table)) * width).view(-1, width)  # (rows, d)
    for start in range(0, len(table), step):
        rows = table[start:start + step]
        widened = buffer[:len(rows)]
        widened.copy_(rows)
        yield start, widened


_BUFFERS = threading.local()  # .cpu: this thread's float32 buffer for widened slices (never shared between threads)


def _buffer(elements: int) -> torch.Tensor:
    """`elements` float32 values of this thread's widening buffer (tables are only widened on the CPU)."""
    buffer = getattr(_BUFFERS, "cpu", None)
    if buffer is None or len(buffer) < elements:
        with torch.inference_mode(False):  # a normal tensor, which runs in and out of inference mode alike
            buffer = _BUFFERS.cpu = torch.empty(max(elements, WIDENED_ELEMENTS), dtype=torch.float32)
    return buffer[:elements]


class NarrowLinear(nn.Linear):
    """An nn.Linear whose weight is stored in bfloat16 (a large vocabulary table, Gemma 3's block matrices): float32
    in, float32 out, through table_product. models.narrow_large_tables and narrow_block_matrices swap a module's class
    to this, so that copies of the model keep it."""

    widened = False  # True for a block matrix: always widened, so that the residual stream never passes through
    #   bfloat16 (the vocabulary's head alone multiplies natively where it can; bench_weights_at_rest.py)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return table_product(states, self.weight, self.bias, self.widened)


@dataclass(frozen=True)
class Architecture:
    embed: nn.Module  # token ids -> (seq, d)
    position_kind: str  # one of POSITION_KINDS
    position_table: nn.Embedding | None  # learned positions (BERT `position_embeddings`, GPT-2 `wpe`)
    rotary_bases: dict[str, torch.Tensor]  # layer type -> (head_dim / 2,) inverse frequencies: one entry "" for
    #   Llama and Qwen2; Gemma 3 keeps two ("sliding_attention" base 10,000, "full_attention" base 1,000,000)
    blocks: tuple[nn.Module, ...]  # one per layer, in order
    attention: tuple[nn.Module, ...]  # each block's self-attention
    mlp: tuple[nn.Module | None, ...]  # each block's feed-forward (None where the family splits it, as BERT does)
    writes: tuple[tuple[nn.Module, nn.Module | None], ...]  # per block, the modules whose outputs are added to the
    #   residual stream, (attention's, MLP's): the attention and MLP themselves (Llama, GPT-2), or the norms after
    #   them (Gemma's post-norms)
    layer_types: tuple[str, ...]  # per block: its rotary_bases key ("" where one base serves every layer)
    windows: tuple[int | None, ...]  # per block: its sliding window (Gemma 3: 512 on five layers of six), else None
    final_norm: nn.Module | None  # between the last block and the unembedding (Llama `norm`, GPT-2 `ln_f`; BERT none)
    unembed: nn.Module | None  # hidden state -> vocabulary logits (decoders only)
    logit_softcap: float | None  # Gemma 2's final tanh cap on the logits (config.final_logit_softcapping), else None
    query_heads: int
    kv_heads: int
    head_dim: int

    @property
    def layers(self) -> int:
        return len(self.blocks)

    def logits(self, final_states: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Final (normed) states (..., d) -> vocabulary logits (..., vocab) as the model's own head computes them:
        the unembedding, then the family's final scaling (Gemma 2's softcap). Every logit the engine reads is this.
        `rows`: only that slice of the vocabulary, (..., len(rows)) (the head's weight read in slices)."""
        if rows is None:
            logits = self.unembed(final_states)
        else:
            bias = getattr(self.unembed, "bias", None)
            logits = table_product(final_states, self.unembed.weight[rows], None if bias is None else bias[rows])
        if self.logit_softcap:
            logits = torch.tanh(logits / self.logit_softcap) * self.logit_softcap
        return logits

    @property
    def vocabulary(self) -> int:
        return self.unembed.weight.shape[0] if self.unembed is not None else self.embed.weight.shape[0]

    def positions_per_chunk(self, budget_bytes: int = LOGIT_CHUNK_BYTES) -> int:
        """How many positions' float32 logits fit in `budget_bytes`: chunks are sized by bytes, not positions
        (a 262,144-entry vocabulary makes one position's logits 1 MB)."""
        return max(1, budget_bytes // (self.vocabulary * 4))

    def log_softmax_chunks(self, final_states: torch.Tensor, chunk: int | None = None):
        """(start, (chunk, vocab) float32 log-probabilities) for `chunk` positions of (seq, d) states at a time:
        never (seq x vocab) at once (8,192 x 262,144 float32 would be 8.6 GB). Default: positions_per_chunk()."""
        chunk = chunk or self.positions_per_chunk()
        for start in range(0, len(final_states), chunk):
            yield start, torch.log_softmax(self.logits(final_states[start:start + chunk]).float(), dim=-1)

    def query_projection(self, layer: int) -> tuple[nn.Module, nn.Module, nn.Module | None] | None:
        """(input norm, query projection, per-head query norm or None) of a block with a separate query matrix
        (Llama, Qwen2; Gemma 3 also normalises each head's query, `q_norm`); else None."""
        block, attention = self.blocks[layer], self.attention[layer]
        norm, query = getattr(block, "input_layernorm", None), getattr(attention, "q_proj", None)
        return (norm, query, getattr(attention, "q_norm", None)) if norm is not None and query is not None else None


def find(model: nn.Module) -> Architecture:
    """The parts of a transformers model, by structure first and by the common names second."""
    base = getattr(model, "base_model", model)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    blocks = _blocks(base, config)
    query_heads = getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0)
    hidden = getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0)
    rotary = _first(base, ("rotary_emb",))
    bases = {name.removesuffix("inv_freq").rstrip("_"): buffer.detach().float()
             for name, buffer in (rotary.named_buffers() if rotary is not None else ())
             if name.endswith("inv_freq") and "original" not in name}  # (head_dim / 2,) each
    attention = tuple(_first(block, ("self_attn", "attn", "attention", "self_attention")) for block in blocks)
    mlp = tuple(_first(block, ("mlp", "feed_forward", "ffn")) for block in blocks)
    types = tuple(getattr(config, "layer_types", None) or [""] * len(blocks))
    table = _first(base, ("embeddings.position_embeddings", "wpe", "embed_positions"))
    table = table if isinstance(table, nn.Embedding) else None
    unembed = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return Architecture(
        embed=model.get_input_embeddings(),
        position_kind="rotary" if bases else "learned" if table is not None else "none",
        position_table=table,
        rotary_bases=bases,
        blocks=tuple(blocks),
        attention=attention,
        mlp=mlp,
        writes=tuple(_residual_writes(*parts) for parts in zip(blocks, attention, mlp)),
        layer_types=tuple(kind if kind in bases else "" for kind in types),
        windows=tuple(getattr(module, "sliding_window", None) for module in attention),
        final_norm=_first(base, ("norm", "ln_f", "final_layer_norm", "final_layernorm")),
        unembed=unembed if isinstance(unembed, nn.Module) else None,
        logit_softcap=getattr(config, "final_logit_softcapping", None) or None,
        query_heads=query_heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or query_heads,
        head_dim=getattr(config, "head_dim", None) or hidden // max(1, query_heads),
    )


def _blocks(base: nn.Module, config) -> list[nn.Module]:
    """The ModuleList with one entry per layer (`layers`, `h`, `encoder.layer`…)."""
    count = getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0)
    for _, module in base.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return list(module)
    raise ValueError(f"no list of {count} blocks in {type(base).__name__}")


def _residual_writes(block: nn.Module, attention: nn.Module, mlp: nn.Module | None) -> tuple:
    """What a block adds to the residual stream. Gemma normalises each output before adding it: a block with both
    `post_attention_layernorm` and `post_feedforward_layernorm` adds those norms' outputs. (Llama has a
    `post_attention_layernorm` too, but it is the MLP's input norm: the pair is what tells the layouts apart.)"""
    after_mlp = getattr(block, "post_feedforward_layernorm", None)
    after_attention = getattr(block, "post_attention_layernorm", None)
    if after_mlp is not None and after_attention is not None:
        return after_attention, after_mlp
    return attention, mlp


def _first(module: nn.Module, paths: tuple[str, ...]) -> nn.Module | None:
    for path in paths:
        found = module
        for name in path.split("."):
            found = getattr(found, name, None)
            if found is None:
                break
        if isinstance(found, nn.Module):
            return found
    return None


def matrix_weight(module: nn.Module) -> torch.Tensor:
    """(out, in) float32 weight of a Linear, or of GPT-2's Conv1D (which stores it transposed)."""
    return (module.weight.t() if isinstance(module, Conv1D) else module.weight).detach().float()


@dataclass(frozen=True)
class FrozenNorm:
    """A norm with its divisor held at the value it takes for one input: a linear map, so a sum of parts splits into
    the parts' images exactly (the bias, added once, is kept apart)."""

    centred: bool  # LayerNorm subtracts the mean first; RMSNorm does not
    scale: float  # 1 / RMS (or standard deviation) of the input it was frozen at
    gain: torch.Tensor  # (d,) what the rescaled vector is multiplied by
    bias: torch.Tensor  # (d,) added after (zeros for RMSNorm)

    def __call__(self, part: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., d)
        part = part.float()
        return ((part - part.mean(-1, keepdim=True)) if self.centred else part) * self.scale * self.gain


@torch.inference_mode()
def norm_gain_and_bias(norm: nn.Module, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(gain, bias), each (d,), read by running the norm itself: on zeros (its bias) and on ±1 (mean 0, RMS 1), so
    Llama's w, Gemma's 1 + w and LayerNorm's (w, b) all come out without naming a family's convention."""
    parameter = next(norm.parameters())
    signs = torch.ones(width, device=parameter.device, dtype=parameter.dtype)
    signs[1::2] = -1  # (d,)
    bias = norm(torch.zeros_like(signs)).float()
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 0.0)) or 0.0)
    return (norm(signs).float() - bias) * signs.float() * (1 + eps) ** 0.5, bias


def frozen_norm(norm: nn.Module, input_state: torch.Tensor) -> FrozenNorm:
    """The norm as a linear map at `input_state` (d,): norm(x) == frozen(x) + bias for x = input_state."""
    state = input_state.float()
    centred = isinstance(norm, nn.LayerNorm)
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    spread = (state - state.mean()) if centred else state
    gain, bias = norm_gain_and_bias(norm, len(state))
    return FrozenNorm(centred, float(1 / torch.sqrt(spread.pow(2).mean() + eps)), gain, bias)
