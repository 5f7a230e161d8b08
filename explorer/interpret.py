"""Interpretability lab: attribute the next token to layers and heads, knock parts out, patch activations from one
prompt into another, and steer generation along a direction in the residual stream.

Every intervention is a forward hook (or pre-hook) registered inside `hooked`, which holds the shared model's lock,
acts only for the calling thread's forwards, and removes every hook in `finally`: the model other sessions use is
never changed. Sweeps put each intervention on its own row of one batch, so a 30 × 9 head sweep is a handful of
batched forwards, not 270 separate ones; only the last position's logits are ever built.

Hooks in this module rather than TransformerLens or nnsight: TransformerLens rebuilds the model from its own weights
(it cannot take the bundled GGUF-expanded SmolLM2 offline, and would hold a second copy), and nnsight wraps the shared
model in a tracing proxy; a few hooks on the modules `architecture.find` already knows keep one shared copy.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from transformers.pytorch_utils import Conv1D

from explorer.activations import CaptureError, chosen_log_probs, encode
from explorer.architecture import frozen_norm, matrix_weight, norm_gain_and_bias
from explorer.models import LoadedModel, device_of
from explorer.prediction import generate_ids, softmax

MAX_PROMPT_TOKENS = 64  # the lab's prompts are short: sweeps batch one row per intervention
BATCH_ROWS = 45  # rows per batched forward in a sweep (5 layers × 9 heads of SmolLM2); progress is reported per batch
ABLATIONS = ("zero", "mean")
PARTS = ("layer", "attn", "mlp", "head")
Progress = Callable[[int, int], None]  # (done, total): raises jobs.Cancelled when the learner cancels


# ---------------------------------------------------------------- hooks, scoped to one call

@contextmanager
def hooked(loaded: LoadedModel, forward: list = (), pre: list = ()):
    """Hold the model's lock with `forward` [(module, fn(module, args, output))] and `pre` [(module, fn(module, args,
    kwargs))] hooks registered; each acts only for this thread's forwards; all are removed on the way out."""
    owner = threading.get_ident()

    def mine(function):
        return lambda *arguments: function(*arguments) if threading.get_ident() == owner else None

    with loaded.lock, torch.inference_mode():
        handles = []
        try:
            handles += [module.register_forward_hook(mine(fn)) for module, fn in forward]
            handles += [module.register_forward_pre_hook(mine(fn), with_kwargs=True) for module, fn in pre]
            yield
        finally:
            for handle in handles:
                handle.remove()


def _hidden(output):
    """The hidden states in a block's or attention's output (a tensor, or a tuple led by it)."""
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def _first_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """A pre-hook's view of the module's first input (positional, or `hidden_states=`)."""
    return args[0] if args else kwargs["hidden_states"]


def _replace_input(args: tuple, kwargs: dict, change: Callable[[torch.Tensor], torch.Tensor]):
    """A pre-hook's return value with the module's first input (positional or `hidden_states=`) changed."""
    if args:
        return (change(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": change(kwargs["hidden_states"])}


def output_projection(attention: torch.nn.Module) -> torch.nn.Module:
    """The matrix that mixes the heads back into the residual stream (Llama `o_proj`, GPT-2 `c_proj`, BERT `dense`)."""
    for name in ("o_proj", "c_proj", "out_proj", "dense"):
        module = getattr(attention, name, None)
        if isinstance(module, (torch.nn.Linear, Conv1D)):
            return module
    raise CaptureError("not_available", f"no output projection in {type(attention).__name__}")


# ---------------------------------------------------------------- prompts and targets

def prompt_ids(loaded: LoadedModel, text: str) -> list[int]:
    """The prompt's ids; an empty prompt or one longer than MAX_PROMPT_TOKENS is refused with a message."""
    if loaded.info.family != "decoder" or loaded.parts.unembed is None:
        raise CaptureError("not_available", "the lab reads next-token logits (decoders only)")
    ids = [int(i) for i in encode(loaded, text, None)[0]]
    if len(ids) > MAX_PROMPT_TOKENS:
        raise CaptureError("lab_prompt_too_long", f"{len(ids)} > {MAX_PROMPT_TOKENS}")
    return ids


def target_id(loaded: LoadedModel, ids: list[int], target: str) -> int:
    """The target token: the model's top prediction when `target` is empty; else `target` or ' ' + target, whichever
    is one token (both: the one the model finds likelier, so "Paris" after "… is" means " Paris"); a target that is
    several tokens either way is refused, naming its pieces."""
    logits = last_logits(loaded, [ids])[0]
    if not target:
        return int(np.argmax(logits))
    singles = [pieces[0] for pieces in (loaded.tokenizer.encode(candidate, add_special_tokens=False)
                                        for candidate in (target, " " + target)) if len(pieces) == 1]
    if singles:
        return int(max(singles, key=lambda index: logits[index]))
    pieces = loaded.tokenizer.convert_ids_to_tokens(loaded.tokenizer.encode(target, add_special_tokens=False))
    raise CaptureError("lab_target_not_one_token", " | ".join(str(p) for p in pieces))


def last_logits(loaded: LoadedModel, rows: list[list[int]], forward: list = (), pre: list = ()) -> np.ndarray:
    """(rows, vocab) float32 logits at the last position of each row (rows of equal length), under the given hooks."""
    device = device_of(loaded.model)
    with hooked(loaded, forward, pre):
        output = loaded.model(torch.as_tensor(rows, device=device), logits_to_keep=1)
    return output.logits[:, -1].float().cpu().numpy()


def top_tokens(logits: np.ndarray, count: int = 5) -> list[tuple[int, float]]:
    """(token id, probability) of the `count` likeliest next tokens."""
    probs = softmax(logits)
    return [(int(i), float(probs[i])) for i in np.argsort(-probs)[:count]]


# ---------------------------------------------------------------- direct logit attribution

@dataclass
class Attribution:
    target: int
    logit: float  # the model's own logit for the target
    probability: float
    components: list[str]  # "embed", then "attn 0", "mlp 0", … "attn 29", "mlp 29"
    contributions: np.ndarray  # (components,) each one's push on the target's logit, after the linearised final norm
    constant: float  # the final norm's bias and the unembedding's bias (0 for SmolLM2's RMSNorm and tied unembedding)
    heads: np.ndarray  # (layers, query heads): each head's share of its layer's attention contribution
    head_constant: np.ndarray  # (layers,) the output projection's bias, where it has one
    scale: float  # 1 / RMS (or standard deviation) of the final residual: the linearisation's fixed factor

    @property
    def total(self) -> float:
        return float(self.contributions.sum() + self.constant)


@torch.inference_mode()
def attribute(loaded: LoadedModel, ids: list[int], target: int) -> Attribution:
    """How much each layer's attention and MLP output (and each head) pushes the target's logit at the last position.

    The residual stream before the final norm is the sum of the first block's input and what every block writes
    into it (`Architecture.writes`: the attention and MLP outputs, or, on Gemma, the post-norms of them). The final
    norm divides that sum by one number and multiplies by its gain; holding the number fixed (`frozen_norm`) makes it
    linear, so the logit splits exactly into the components' terms. A head's share goes through the same frozen
    maps (Gemma's post-attention norm, frozen at the layer's attention output). A final softcap (cap · tanh(x / cap))
    is linearised the same way, at the model's own logit: every term is scaled by one factor."""
    parts = loaded.parts
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, pick):
        return lambda module, *arguments: seen.__setitem__(name, pick(*arguments)[0, -1])

    pre = [(parts.final_norm, keep("final", _first_input)), (parts.blocks[0], keep("embed", _first_input))]
    forward = []
    for layer in range(parts.layers):
        attention_write, mlp_write = parts.writes[layer]
        forward.append((attention_write, keep(f"attn {layer}", lambda args, output: _hidden(output))))
        forward.append((mlp_write, keep(f"mlp {layer}", lambda args, output: _hidden(output))))
        if attention_write is not parts.attention[layer]:  # a post-norm: its input is the attention's own output
            pre.append((attention_write, keep(f"attn out {layer}", _first_input)))
        pre.append((output_projection(parts.attention[layer]), keep(f"z {layer}", _first_input)))
    logits = last_logits(loaded, [ids], forward, pre)[0]
    final = frozen_norm(parts.final_norm, seen["final"])
    row = parts.unembed.weight[target].float()  # (d,)
    constant = float(final.bias @ row)
    if getattr(parts.unembed, "bias", None) is not None:
        constant += float(parts.unembed.bias[target])

    def push(vector: torch.Tensor) -> float:  # (d,) in the residual stream -> its term in the target's logit
        return float(final(vector) @ row)

    components = ["embed"] + [f"{kind} {i}" for i in range(parts.layers) for kind in ("attn", "mlp")]
    contributions = np.array([push(seen[name]) for name in components])
    heads = np.zeros((parts.layers, parts.query_heads))
    head_constant = np.zeros(parts.layers)
    for layer in range(parts.layers):
        attention_write = parts.writes[layer][0]
        after = (frozen_norm(attention_write, seen[f"attn out {layer}"]) if f"attn out {layer}" in seen
                 else lambda vector: vector)  # what the attention's output becomes in the residual stream
        projection = output_projection(parts.attention[layer])
        weight = matrix_weight(projection)  # (d, heads × head_dim)
        z = seen[f"z {layer}"].float().reshape(parts.query_heads, -1)  # (heads, head_dim)
        per_head = torch.einsum("dhk,hk->hd", weight.reshape(weight.shape[0], parts.query_heads, -1), z)  # (heads, d)
        heads[layer] = [push(after(vector)) for vector in per_head]
        if getattr(projection, "bias", None) is not None:
            head_constant[layer] = push(after(projection.bias.float()))
    raw = float(contributions.sum() + constant)
    cap = parts.logit_softcap
    factor = math.tanh(raw / cap) * cap / raw if cap and abs(raw) > 1e-9 else 1.0
    return Attribution(target, float(logits[target]), float(softmax(logits)[target]), components, contributions * factor,
                       constant * factor, heads * factor, head_constant * factor, final.scale)


# ---------------------------------------------------------------- ablation

@dataclass(frozen=True)
class Ablation:
    part: str  # one of PARTS
    layer: int
    head: int = 0  # for part == "head"
    mode: str = "zero"  # "zero": the part adds nothing; "mean": it adds its mean over the prompt's positions


def _ablation_hooks(loaded: LoadedModel, rows: list[Ablation | None]) -> tuple[list, list]:
    """Hooks that apply row r's ablation to row r of a batch only (None: that row runs untouched)."""
    parts = loaded.parts
    forward, pre = [], []
    for layer in range(parts.layers):
        mine = [(r, a) for r, a in enumerate(rows) if a is not None and a.layer == layer]
        if not mine:
            continue
        attention_write, mlp_write = parts.writes[layer]  # what the part adds to the residual stream
        for part, module in (("layer", parts.blocks[layer]), ("attn", attention_write), ("mlp", mlp_write)):
            chosen = [(r, a.mode) for r, a in mine if a.part == part]
            if chosen:
                forward.append((module, _ablate_output(chosen, part == "layer")))
        heads = [(r, a.head, a.mode) for r, a in mine if a.part == "head"]
        if heads:
            pre.append((output_projection(parts.attention[layer]), _ablate_heads(heads, parts.query_heads)))
    return forward, pre


def _ablate_output(chosen: list[tuple[int, str]], whole_block: bool):
    def hook(module, args, output):
        hidden = _hidden(output).clone()  # (batch, seq, d)
        added = hidden - args[0] if whole_block else hidden  # what this part adds to the residual stream
        for row, mode in chosen:
            kept = added[row].mean(0, keepdim=True).expand_as(added[row]) if mode == "mean" else torch.zeros_like(added[row])
            hidden[row] = (args[0][row] + kept) if whole_block else kept
        return _with_hidden(output, hidden)
    return hook


def _ablate_heads(chosen: list[tuple[int, int, str]], query_heads: int):
    def hook(module, args, kwargs):
        def change(z: torch.Tensor) -> torch.Tensor:  # (batch, seq, heads × head_dim): the heads' outputs, concatenated
            z = z.clone()
            split = z.view(z.shape[0], z.shape[1], query_heads, -1)  # (batch, seq, heads, head_dim)
            for row, head, mode in chosen:
                split[row, :, head] = split[row, :, head].mean(0, keepdim=True) if mode == "mean" else 0.0
            return z
        return _replace_input(args, kwargs, change)
    return hook


@dataclass
class AblationResult:
    before: list[tuple[int, float]]  # top-5 (token id, probability) untouched
    after: list[tuple[int, float]]
    target_before: float
    target_after: float


def ablate(loaded: LoadedModel, ids: list[int], target: int, ablation: Ablation) -> AblationResult:
    """The next-token distribution with and without one part, in one batch of two rows."""
    logits = last_logits(loaded, [ids, ids], *_ablation_hooks(loaded, [None, ablation]))
    probs = softmax(logits)
    return AblationResult(top_tokens(logits[0]), top_tokens(logits[1]),
                          float(probs[0, target]), float(probs[1, target]))


def _sweep(loaded: LoadedModel, ids: list[int], target: int, rows: list[Ablation], progress: Progress | None) -> np.ndarray:
    """The target's probability with each row's ablation, BATCH_ROWS rows per forward."""
    found = []
    for start in range(0, len(rows), BATCH_ROWS):
        chunk = rows[start:start + BATCH_ROWS]
        logits = last_logits(loaded, [ids] * len(chunk), *_ablation_hooks(loaded, chunk))
        found.append(softmax(logits)[:, target])
        if progress:
            progress(start + len(chunk), len(rows))
    return np.concatenate(found)


def head_sweep(loaded: LoadedModel, ids: list[int], target: int, mode: str = "zero",
               progress: Progress | None = None) -> np.ndarray:
    """(layers, heads): the target's probability with each head knocked out."""
    parts = loaded.parts
    rows = [Ablation("head", layer, head, mode) for layer in range(parts.layers) for head in range(parts.query_heads)]
    return _sweep(loaded, ids, target, rows, progress).reshape(parts.layers, parts.query_heads)


def part_sweep(loaded: LoadedModel, ids: list[int], target: int, mode: str = "zero",
               progress: Progress | None = None) -> np.ndarray:
    """(3, layers): the target's probability with each whole layer, attention or MLP knocked out."""
    layers = loaded.parts.layers
    rows = [Ablation(part, layer, 0, mode) for part in ("layer", "attn", "mlp") for layer in range(layers)]
    return _sweep(loaded, ids, target, rows, progress).reshape(3, layers)


# ---------------------------------------------------------------- activation patching

def residuals(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    """(layers + 1, seq, d): the input of each block, then the input of the final norm (the last block's output)."""
    found: dict[int, torch.Tensor] = {}
    parts = loaded.parts
    pre = [(module, lambda m, a, k, i=i: found.__setitem__(i, _first_input(a, k)[0].clone()))
           for i, module in enumerate([*parts.blocks, parts.final_norm])]
    last_logits(loaded, [ids], (), pre)
    return torch.stack([found[i] for i in range(parts.layers + 1)])


def head_outputs(loaded: LoadedModel, ids: list[int]) -> torch.Tensor:
    """(layers, seq, heads × head_dim): every layer's heads' outputs before the output projection."""
    found: dict[int, torch.Tensor] = {}
    pre = [(output_projection(attention), lambda m, a, k, i=i: found.__setitem__(i, _first_input(a, k)[0].clone()))
           for i, attention in enumerate(loaded.parts.attention)]
    last_logits(loaded, [ids], (), pre)
    return torch.stack([found[i] for i in range(loaded.parts.layers)])


def patched_logits(loaded: LoadedModel, ids: list[int], source: torch.Tensor,
                   rows: list[list[tuple[int, int]]]) -> np.ndarray:
    """(rows, vocab): row r runs `ids` with the residual stream at each (layer, position) in rows[r] replaced by
    `source[layer, position]` (from `residuals`; layer = layers means the final norm's input)."""
    parts = loaded.parts
    modules = [*parts.blocks, parts.final_norm]
    pre = []
    for layer, module in enumerate(modules):
        mine = [(r, position) for r, places in enumerate(rows) for at, position in places if at == layer]
        if mine:
            row_index = torch.tensor([r for r, _ in mine])
            positions = torch.tensor([p for _, p in mine])

            def hook(module, args, kwargs, layer=layer, row_index=row_index, positions=positions):
                def change(hidden: torch.Tensor) -> torch.Tensor:  # (batch, seq, d)
                    hidden = hidden.clone()
                    hidden[row_index, positions] = source[layer, positions].to(hidden.dtype)
                    return hidden
                return _replace_input(args, kwargs, change)
            pre.append((module, hook))
    return last_logits(loaded, [ids] * len(rows), (), pre)


@dataclass
class PatchingResult:
    clean_token: int
    corrupt_token: int
    clean_difference: float  # logit(clean answer) − logit(corrupted answer), on the clean prompt
    corrupt_difference: float  # the same on the corrupted prompt
    recovered: np.ndarray  # (layers + 1, seq): (patched − corrupted) / (clean − corrupted) difference


def same_length(loaded: LoadedModel, clean: str, corrupt: str) -> tuple[list[int], list[int]]:
    first, second = prompt_ids(loaded, clean), prompt_ids(loaded, corrupt)
    if len(first) != len(second):
        raise CaptureError("lab_lengths_differ", f"{len(first)} ≠ {len(second)}")
    return first, second


def _patching_sweep(loaded: LoadedModel, clean_ids: list[int], corrupt_ids: list[int], places: list, shape: tuple,
                    patched: Callable[[list], np.ndarray], progress: Progress | None) -> PatchingResult:
    """Run the corrupted prompt once per place (BATCH_ROWS places per batched forward, `patched(chunk)` giving their
    (rows, vocab) logits) and measure how much of the clean answer's logit difference each restores."""
    clean_logits, corrupt_logits = last_logits(loaded, [clean_ids])[0], last_logits(loaded, [corrupt_ids])[0]
    clean_token, corrupt_token = int(clean_logits.argmax()), int(corrupt_logits.argmax())
    difference = lambda logits: logits[..., clean_token] - logits[..., corrupt_token]  # noqa: E731
    clean_difference, corrupt_difference = float(difference(clean_logits)), float(difference(corrupt_logits))
    found = []
    for start in range(0, len(places), BATCH_ROWS):
        chunk = places[start:start + BATCH_ROWS]
        found.append(difference(patched(chunk)))
        if progress:
            progress(start + len(chunk), len(places))
    gap = clean_difference - corrupt_difference
    recovered = (np.concatenate(found) - corrupt_difference) / (gap if abs(gap) > 1e-6 else np.nan)
    return PatchingResult(clean_token, corrupt_token, clean_difference, corrupt_difference, recovered.reshape(shape))


def patch_residual_sweep(loaded: LoadedModel, clean_ids: list[int], corrupt_ids: list[int],
                         progress: Progress | None = None) -> PatchingResult:
    """Patch the clean residual stream into the corrupted run at every layer × position; how much of the clean
    answer's logit difference comes back (1 = all of it, 0 = none): recovered (layers + 1, seq)."""
    source = residuals(loaded, clean_ids)  # (layers + 1, seq, d)
    places = [(layer, position) for layer in range(source.shape[0]) for position in range(len(clean_ids))]
    return _patching_sweep(loaded, clean_ids, corrupt_ids, places, (source.shape[0], len(clean_ids)),
                           lambda chunk: patched_logits(loaded, corrupt_ids, source, [[place] for place in chunk]),
                           progress)


def patch_head_sweep(loaded: LoadedModel, clean_ids: list[int], corrupt_ids: list[int], position: int,
                     progress: Progress | None = None) -> PatchingResult:
    """Patch each head's output (before the output projection) at one position from clean into corrupted:
    recovered (layers, heads)."""
    parts = loaded.parts
    source = head_outputs(loaded, clean_ids)  # (layers, seq, heads × head_dim)
    places = [(layer, head) for layer in range(parts.layers) for head in range(parts.query_heads)]

    def patched(chunk: list[tuple[int, int]]) -> np.ndarray:
        pre = []
        for layer in {layer for layer, _ in chunk}:
            mine = [(row, head) for row, (at, head) in enumerate(chunk) if at == layer]

            def hook(module, args, kwargs, layer=layer, mine=mine):
                def change(z: torch.Tensor) -> torch.Tensor:  # (batch, seq, heads × head_dim)
                    z = z.clone()
                    split = z.view(z.shape[0], z.shape[1], parts.query_heads, -1)
                    clean = source[layer, position].view(parts.query_heads, -1)  # (heads, head_dim)
                    for row, head in mine:
                        split[row, position, head] = clean[head]
                    return z
                return _replace_input(args, kwargs, change)
            pre.append((output_projection(parts.attention[layer]), hook))
        return last_logits(loaded, [corrupt_ids] * len(chunk), (), pre)

    return _patching_sweep(loaded, clean_ids, corrupt_ids, places, (parts.layers, parts.query_heads), patched, progress)


# ---------------------------------------------------------------- steering

@torch.inference_mode()
def steering_direction(loaded: LoadedModel, positive: list[str], negative: list[str], layer: int) -> np.ndarray:
    """(d,): mean residual (the input of block `layer`, over every position of every prompt) of the positive set
    minus that of the negative set."""
    if not [p for p in positive if p.strip()] or not [n for n in negative if n.strip()]:
        raise CaptureError("lab_empty_set", "")
    means = []
    for prompts in (positive, negative):
        states = [residuals(loaded, prompt_ids(loaded, p))[layer].mean(0) for p in prompts if p.strip()]  # (d,) each
        means.append(torch.stack(states).mean(0))
    return (means[0] - means[1]).float().cpu().numpy()


def steered_generation(loaded: LoadedModel, ids: list[int], layer: int, direction: np.ndarray, strength: float,
                       steps: int) -> list[int]:
    """Greedy generation with strength × direction added to the input of block `layer` at every position."""
    vector = torch.as_tensor(direction, dtype=loaded.dtype)  # (d,)

    def add(module, args, kwargs):
        return _replace_input(args, kwargs, lambda hidden: hidden + strength * vector.to(hidden.device))

    hooks = [(loaded.parts.blocks[layer], add)] if strength else []
    return generate_ids(loaded, ids, steps, hold=lambda: hooked(loaded, (), hooks))[0]


@torch.inference_mode()
def direction_vocabulary(loaded: LoadedModel, direction: np.ndarray, count: int = 12) -> tuple[list[int], np.ndarray]:
    """The ids (and scores) of the `count` tokens at each end, most along the direction first: the tokens whose unembedding (through the final norm's weight) points most along the direction, and most
    against it."""
    parts = loaded.parts
    gain, _ = norm_gain_and_bias(parts.final_norm, len(direction))  # (d,): w, or Gemma's 1 + w
    weight = parts.unembed.weight  # (vocab, d) in its own dtype: a float32 copy of Gemma's would be 640 MB
    scores = (weight @ (torch.as_tensor(direction).float() * gain).to(weight.dtype)).float()  # (vocab,)
    order = torch.argsort(scores, descending=True)
    ends = torch.cat([order[:count], order[-count:]])  # (2 × count,)
    return [int(i) for i in ends], scores[ends].numpy()


# ---------------------------------------------------------------- break it: which layers matter

def layer_removal(loaded: LoadedModel, text: str, tokens: int = 128, progress: Progress | None = None) -> np.ndarray:
    """(layers + 1,): perplexity of the text's first `tokens` tokens with nothing removed, then with each block
    skipped (its output replaced by its input). Final states are read at the norm, log-probabilities 64 at a time."""
    ids = [int(i) for i in encode(loaded, text, tokens)[0]]
    if len(ids) < 2:
        raise CaptureError("empty_text", "")
    layers = loaded.parts.layers
    rows: list[Ablation | None] = [None] + [Ablation("layer", layer) for layer in range(layers)]
    perplexities = []
    per_batch = 4  # rows × tokens × d stays small; the unembedding reads 64 positions at a time
    for start in range(0, len(rows), per_batch):
        chunk = rows[start:start + per_batch]
        forward, pre = _ablation_hooks(loaded, chunk)
        finals: dict[str, torch.Tensor] = {}
        forward = [*forward, (loaded.parts.final_norm, lambda m, a, out: finals.__setitem__("after", out))]
        last_logits(loaded, [ids] * len(chunk), forward, pre)
        with torch.inference_mode():
            for row in range(len(chunk)):
                log_probs = chosen_log_probs(loaded.parts, finals["after"][row], torch.as_tensor(ids))
                perplexities.append(float(torch.exp(-log_probs.mean())))
        if progress:
            progress(start + len(chunk), len(rows))
    return np.array(perplexities)
