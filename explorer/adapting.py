"""Adapting a decoder without changing it: LoRA fine-tuning with PEFT, the chat template (the alignment stages that
build on LoRA, SFT, a reward model and DPO, are in `alignment`).

Every training here works on `frozen_view(loaded)`: a module tree of its own whose parameters are the shared model's
tensors, frozen. No weight is copied (SmolLM2's 540 MB stay once in memory) and nothing done to the view (PEFT's
wrapping, train mode, requires_grad) reaches the model other sessions use. Only the adapter's small matrices train.
Never merge an adapter into the view: merging writes into the base weights, which are the shared ones.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import re
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

from explorer import memory, prediction, tokenize

# PEFT 0.21 asks transformers 5 a deprecated question on every wrap; the answer is right, the warning is noise
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
from explorer.activations import CaptureError
from explorer.labels import token_label
from explorer.models import LoadedModel, device_of
from explorer.jobs import Job, TrainingError

MAX_EXAMPLES = 16
MAX_EXAMPLE_TOKENS = 64  # an example longer than this is refused (with its number), not cut
MAX_STEPS = 200
MAX_RANK = 64
MAX_TRAINING_TOKENS = 16_000  # steps x example tokens: ~75 s on 2 cores (bench), so no one holds the queue long
MICRO_BATCH_LOGIT_BYTES = 192 * 49_152 * 4  # float32 logits one forward keeps for backward: 38 MB, 192 SmolLM2 tokens
# (36 of Gemma's 262,144-entry vocabulary, raised to micro_tokens' floor; a batch always holds one example at least)
PRESETS = Path(__file__).resolve().parent.parent / "assets" / "adapting" / "presets.json"


@lru_cache(maxsize=1)
def presets() -> dict:
    """Sample examples, prompts and preference pairs to start from (assets/adapting/presets.json)."""
    return json.loads(PRESETS.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 8
    steps: int = 30
    learning_rate: float = 2e-3
    seed: int = 0

    @property
    def alpha(self) -> int:
        return 2 * self.rank  # the usual choice: the update's scale alpha / rank stays 2 whatever the rank


@dataclass
class Adapter:
    """A trained adapter: a few small tensors that live in the learner's session, never on disk for everyone."""

    base_fingerprint: str
    config: LoraConfig
    weights: dict[str, torch.Tensor]  # PEFT's adapter state dict, on the CPU
    trainable: int  # parameters trained
    total: int  # parameters of the base model
    bytes_per_weight: int
    losses: list[float]

    @property
    def size_bytes(self) -> int:
        return sum(w.numel() * w.element_size() for w in self.weights.values())

    @property
    def model_bytes(self) -> int:
        return self.total * self.bytes_per_weight

    @property
    def digest(self) -> str:
        hasher = hashlib.sha256()
        for name in sorted(self.weights):
            hasher.update(name.encode())
            hasher.update(self.weights[name].float().numpy().tobytes())
        return hasher.hexdigest()[:12]


# ---------------------------------------------------------------- the frozen view and LoRA

def frozen_view(loaded: LoadedModel) -> torch.nn.Module:
    """The shared model's modules, copied, around the same weight tensors (frozen): costs buffers, not weights."""
    with loaded.lock:  # a capture's hooks are only registered under the lock: none are copied
        memo = {id(p): torch.nn.Parameter(p.detach(), requires_grad=False) for p in loaded.model.parameters()}
        view = copy.deepcopy(loaded.model, memo)
    return view.eval()


def lora_config(rank: int) -> LoraConfig:
    # target_modules=None: PEFT's own choice for the architecture (q_proj and v_proj for Llama, c_attn for GPT-2)
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, task_type="CAUSAL_LM")


def lora_model(loaded: LoadedModel, config: LoraConfig, seed: int = 0) -> PeftModel:
    torch.manual_seed(seed)  # LoRA's A matrices start random (B at zero): seeded, a lecture replays the same run
    try:
        with warnings.catch_warnings():  # that a torchao Linear it wraps cannot be merged: nothing is merged here
            warnings.filterwarnings("ignore", message="TorchaoLoraLinear was instantiated", category=UserWarning)
            model = get_peft_model(frozen_view(loaded), copy.deepcopy(config))
    except ValueError as error:  # an architecture PEFT has no default target modules for
        raise TrainingError("lora_unsupported", str(error)[:120]) from error
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and type(module.weight.data) is not torch.Tensor:  # a torchao weight
            module.forward = _DequantizeInBackward.forward_of(module)
    return model


class _DequantizeInBackward(torch.autograd.Function):
    """A frozen quantized Linear that saves nothing for the backward pass and widens its weight again there, as
    QLoRA's kernels do. Left to itself, torchao's int4 Linear saves the float weight it widened (SmolLM2: 403 MB
    of saved tensors a step, more than LoRA's whole step on the float model)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
        ctx.layer = layer
        return torch.nn.functional.linear(x, layer.weight, layer.bias)  # (…, out); grad mode is off in here

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weight = ctx.layer.weight.dequantize().to(grad.dtype)  # (out, in), for this backward only
        return grad @ weight, None  # (…, in); the frozen weight and bias get none

    @staticmethod
    def forward_of(layer: torch.nn.Linear):
        return lambda x: _DequantizeInBackward.apply(x, layer)


def with_adapter(loaded: LoadedModel, adapter: Adapter | None) -> LoadedModel:
    """The loaded model as seen through an adapter, usable by every engine function (prediction, generation)."""
    if adapter is None:
        return loaded
    if adapter.base_fingerprint != loaded.fingerprint:
        raise TrainingError("adapter_other_model")
    model = lora_model(loaded, adapter.config)
    set_peft_model_state_dict(model, adapter.weights)
    return replace(loaded, model=model.eval(), fingerprint=f"{loaded.fingerprint}+{adapter.digest}",
                   lock=threading.Lock())


def check_lora_settings(settings: LoraSettings) -> None:
    if not 1 <= settings.rank <= MAX_RANK:
        raise TrainingError("bad_rank", f"1–{MAX_RANK}")
    if not 1 <= settings.steps <= MAX_STEPS:
        raise TrainingError("bad_steps", f"1–{MAX_STEPS}")
    if not 0 < settings.learning_rate <= 0.1:
        raise TrainingError("bad_learning_rate", "0–0.1")


def check_examples(tokenizer, text: str) -> list[list[int]]:
    """One example per non-empty line, as token ids; refused with a reason (which line) rather than cut."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise TrainingError("no_examples")
    if len(lines) > MAX_EXAMPLES:
        raise TrainingError("too_many_examples", f"{len(lines)} > {MAX_EXAMPLES}")
    examples = []
    for number, line in enumerate(lines, start=1):
        if len(line) > 20 * MAX_EXAMPLE_TOKENS:  # never tokenize a huge paste whole
            raise TrainingError("example_too_long", f"{number}: {len(line):,} > {MAX_EXAMPLE_TOKENS}")
        ids = tokenizer(line, add_special_tokens=True)["input_ids"]
        if len(ids) > MAX_EXAMPLE_TOKENS:
            raise TrainingError("example_too_long", f"{number}: {len(ids)} > {MAX_EXAMPLE_TOKENS}")
        examples.append(ids)
    return examples


def check_lora(tokenizer, text: str, settings: LoraSettings) -> list[list[int]]:
    """Everything a LoRA training is refused for, before it is queued: the examples as token ids."""
    check_lora_settings(settings)
    examples = check_examples(tokenizer, text)
    work = settings.steps * sum(map(len, examples))
    if work > MAX_TRAINING_TOKENS:
        raise TrainingError("too_much_training", f"{settings.steps} × {sum(map(len, examples)):,} = {work:,} > "
                                                 f"{MAX_TRAINING_TOKENS:,}")
    return examples


def micro_tokens(loaded: LoadedModel) -> int:
    """Padded tokens per training forward, so that its logits stay within MICRO_BATCH_LOGIT_BYTES (at least 96: a
    forward of fewer tokens costs nearly as much; Gemma's 96 x 262,144 float32 logits are 100 MB)."""
    return max(96, loaded.parts.positions_per_chunk(MICRO_BATCH_LOGIT_BYTES))


def micro_batches(examples: list[list[int]], pad_id: int, token_budget: int, unscored: list[int] | None = None):
    """Right-padded batches (input_ids, attention_mask, labels), each at most `token_budget` padded tokens; the first
    `unscored[i]` tokens of example i (an SFT prompt) are in the input but not in the loss."""
    unscored = unscored or [0] * len(examples)
    group: list[tuple[list[int], int]] = []
    by_length = sorted(zip(examples, unscored), key=lambda item: len(item[0]))  # alike lengths pad little
    for item in by_length + [None]:
        widest = max([len(g) for g, _ in group] + ([len(item[0])] if item else []), default=0)
        if item is None or (group and (len(group) + 1) * widest > token_budget):
            if group:
                width = max(len(g) for g, _ in group)
                input_ids = torch.tensor([g + [pad_id] * (width - len(g)) for g, _ in group])  # (b, width)
                mask = torch.tensor([[1] * len(g) + [0] * (width - len(g)) for g, _ in group])  # (b, width)
                scored = torch.tensor([[0] * skip + [1] * (len(g) - skip) + [0] * (width - len(g))
                                       for g, skip in group])  # (b, width)
                yield input_ids, mask, input_ids.masked_fill(scored == 0, -100)
            group = []
        if item is not None:
            group.append(item)


def train_lora(loaded: LoadedModel, text: str, settings: LoraSettings, job: Job | None = None) -> Adapter:
    """Next-token loss on the examples (one per line); each step sees all of them. Returns the trained adapter."""
    return train_examples(loaded, check_lora(loaded.tokenizer, text, settings), settings, job)


def train_examples(loaded: LoadedModel, examples: list[list[int]], settings: LoraSettings, job: Job | None = None,
                   unscored: list[int] | None = None, measured: dict | None = None) -> Adapter:
    """A LoRA adapter trained on token-id examples, every example each step (the loss the mean per scored token);
    `unscored[i]` leading tokens of example i are read but not learned (an instruction before its answer). Given
    `measured`, the first step's bytes are written into it by what holds them (see `qlora.StepMemory`)."""
    model = lora_model(loaded, lora_config(settings.rank), settings.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    batches = training_batches(loaded, examples, unscored)
    counted = sum(int((labels[:, 1:] != -100).sum()) for _, _, labels in batches)  # predicted tokens in all
    losses = []
    model.train()
    for step in range(1, settings.steps + 1):
        total, activations = 0.0, 0
        for input_ids, mask, labels in batches:
            with SavedTensors(model) if measured is not None and step == 1 else contextlib.nullcontext() as saved:
                loss = scored_loss(model, input_ids, mask, labels) / counted  # the step's loss: the mean per token
            activations = max(activations, saved.bytes if saved else 0)
            loss.backward()
            total += float(loss.detach())
        if measured is not None and step == 1:
            measured |= step_bytes(model, activations)
        optimizer.step()
        if measured is not None and step == 1:
            measured["optimizer"] = sum(memory.stored_bytes(t) for state in optimizer.state.values()
                                        for t in state.values() if torch.is_tensor(t) and t.dim() > 0)
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        if job is not None:
            job.report(step, total)
    return adapter_of(loaded, model, losses)


def training_batches(loaded: LoadedModel, examples: list[list[int]], unscored: list[int] | None = None) -> list:
    """The examples as micro-batches on the model's device, each within MICRO_BATCH_LOGIT_BYTES of logits."""
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    return [tuple(t.to(device_of(loaded.model)) for t in batch)
            for batch in micro_batches(examples, pad_id, micro_tokens(loaded), unscored)]


def step_bytes(model: torch.nn.Module, activations: int) -> dict[str, int]:
    """A training model's weights (frozen and trained, as stored) and gradients, in bytes."""
    frozen = trained = gradients = 0
    for parameter in model.parameters():
        if parameter.requires_grad:
            trained += memory.stored_bytes(parameter)
            gradients += memory.stored_bytes(parameter.grad) if parameter.grad is not None else 0
        else:
            frozen += memory.stored_bytes(parameter)
    return dict(frozen=frozen, trainable=trained, gradients=gradients, activations=activations)


class SavedTensors:
    """Adds up the bytes autograd saves for the backward pass (the activations), each storage once, weights out."""

    def __init__(self, model: torch.nn.Module):
        self._weights = {_storage(p) for p in model.parameters()}
        self._seen: set[int] = set()
        self.bytes = 0

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda packed: packed)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = _storage(tensor)
        if storage is not None and storage not in self._weights and storage not in self._seen:
            self._seen.add(storage)
            self.bytes += memory.stored_bytes(tensor)
        return tensor


def _storage(tensor: torch.Tensor) -> int | None:
    """Where a plain tensor's bytes start; None for a torchao weight (codes and scales: a frozen weight)."""
    if type(tensor.data) is not torch.Tensor:
        return None
    return tensor.untyped_storage().data_ptr()


def scored_loss(model, input_ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The summed next-token loss of the scored tokens, with logits made only where some row is scored: an SFT
    instruction's positions never reach the unembedding (on Gemma, 262,144 x 640 per position, most of a step)."""
    following = labels[:, 1:]  # (b, w - 1): position t predicts token t + 1
    positions = (following != -100).any(0).nonzero()[:, 0]  # (k,)
    logits = model(input_ids=input_ids, attention_mask=mask, logits_to_keep=positions).logits  # (b, k, vocab)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), following[:, positions].flatten(),
                                             ignore_index=-100, reduction="sum")


def adapter_of(loaded: LoadedModel, model: PeftModel, losses: list[float]) -> Adapter:
    weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in get_peft_model_state_dict(model).items()}
    trainable = sum(w.numel() for w in weights.values())
    return Adapter(loaded.fingerprint, model.peft_config["default"], weights, trainable, loaded.info.parameters,
                   loaded.dtype.itemsize, losses)


def adapter_zip(loaded: LoadedModel, adapter: Adapter) -> bytes:
    """The adapter as PEFT writes it (adapter_config.json + adapter_model.safetensors), zipped for download:
    `PeftModel.from_pretrained(base_model, folder)` loads it back."""
    model = with_adapter(loaded, adapter).model
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        model.save_pretrained(folder)
        for path in sorted(Path(folder).iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


# ---------------------------------------------------------------- reading a prompt before and after

@dataclass
class Comparison:
    """One prompt read by the base model and by the adapted one."""

    prompt: str
    labels: list[str]  # the next tokens most likely under either model, readable
    before: list[float]  # their probabilities under the base model
    after: list[float]  # … and under the adapted one
    continuation_before: str  # greedy, decoded as a whole so byte pieces join into characters
    continuation_after: str


def compare(loaded: LoadedModel, adapted: LoadedModel, prompt: str, k: int = 5, steps: int = 12) -> Comparison:
    ids = [int(i) for i in prediction.encode(loaded, prompt, prediction.MAX_TOKENS)[0]]
    before = prediction.softmax(prediction.next_token_logits(loaded, ids)[0].astype(np.float64))  # (vocab,)
    after = prediction.softmax(prediction.next_token_logits(adapted, ids)[0].astype(np.float64))  # (vocab,)
    top = list(dict.fromkeys([*np.argsort(-before)[:k], *np.argsort(-after)[:k]]))  # both top-k, no repeats
    continuations = [loaded.tokenizer.decode(prediction.generate_ids(model, ids, steps)[0]) for model in (loaded, adapted)]
    return Comparison(prompt, [token_label(loaded.tokenizer, int(i)) for i in top], [float(before[i]) for i in top],
                      [float(after[i]) for i in top], *continuations)


def continuation_probability(loaded: LoadedModel, prompt: str, continuation: str) -> float:
    """P(continuation | prompt): the product of its tokens' probabilities."""
    prompt_ids = loaded.tokenizer(prompt)["input_ids"]
    target = loaded.tokenizer(prompt + continuation)["input_ids"][len(prompt_ids):]
    with loaded.lock, torch.inference_mode():
        return float(torch.exp(sequence_log_probs(loaded.model, [(prompt_ids, target)])[0]))


# ---------------------------------------------------------------- the chat template

@dataclass
class TemplateView:
    ids: list[int]  # what apply_chat_template gives the model
    tokens: tokenize.Tokenization  # the same ids placed on the rendered text: byte pieces join into characters
    text: str  # the prompt as the template writes it


def _chat_messages(request: str) -> list[dict]:
    return [{"role": "user", "content": request}]


def chat_ids(tokenizer, request: str) -> list[int]:
    """The request as one user turn, ready for the assistant's answer (SFT taught the model this format)."""
    if not getattr(tokenizer, "chat_template", None):
        raise CaptureError("not_available", "chat template")
    encoded = tokenizer.apply_chat_template(_chat_messages(request), add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


# A base model has no chat template: it continues a document. Measured on Gemma 3 270M (base): this layout, in the
# question's language, answers from a passage (" 1.8미터", " 6시 15분") and makes an answer up without one.
COMPLETION_LABELS = {"ko": ("문서", "질문", "답"), "en": ("Document", "Question", "Answer")}
HANGUL = re.compile("[\uac00-\ud7a3]")


def completion_prompt(question: str, passages: list[str] = ()) -> str:
    """'Document: …\nQuestion: …\nAnswer:' (numbered documents when there are several, none for a bare question), in
    the question's language."""
    document, asked, answer = COMPLETION_LABELS["ko" if HANGUL.search(question) else "en"]
    listed = [f"{document}: {passages[0]}"] if len(passages) == 1 else [
        f"{document} {number}: {text}" for number, text in enumerate(passages, start=1)]
    return "\n".join([*listed, f"{asked}: {question}", f"{answer}:"])


def request_ids(tokenizer, request: str) -> list[int]:
    """A request as the model expects one: a user turn of its chat template, or a base model's completion prompt."""
    if getattr(tokenizer, "chat_template", None):
        return chat_ids(tokenizer, request)
    return list(tokenizer(completion_prompt(request))["input_ids"])


def template_view(loaded: LoadedModel, request: str) -> TemplateView:
    if not request.strip():
        raise CaptureError("empty_text")
    request = request[: 20 * prediction.MAX_TOKENS]  # a huge paste is cut before the tokenizer sees it
    ids = chat_ids(loaded.tokenizer, request)
    text = loaded.tokenizer.apply_chat_template(_chat_messages(request), add_generation_prompt=True, tokenize=False)
    return TemplateView(ids, tokenize.from_hf(loaded.tokenizer, text), text)


END_OF_TURN = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")  # Gemma, ChatML (SmolLM2, Qwen), Llama 3, Phi


def answer_stop_ids(loaded: LoadedModel) -> set[int]:
    """The ids that end an answer: the tokenizer's end of text, every end id of the model's generation config, and
    an end-of-turn marker the vocabulary has as one special token (Gemma's base model keeps `<end_of_turn>`, id 106,
    though its converted generation config names only `<eos>`)."""
    tokenizer = loaded.tokenizer
    configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    ids = {tokenizer.eos_token_id, *(configured if isinstance(configured, (list, tuple)) else [configured])}
    special = set(tokenizer.all_special_tokens) | {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    ids |= {tokenizer.convert_tokens_to_ids(marker) for marker in END_OF_TURN if marker in special}
    return ids - {None, getattr(tokenizer, "unk_token_id", None)}


def answer(loaded: LoadedModel, ids: list[int], steps: int = 48, end_of_turn: bool = True) -> str:
    """Greedy continuation of `ids`: until the end-of-turn token (left out), or with `end_of_turn=False` for
    `steps` tokens whatever comes, special tokens written out (a raw prompt's answer often writes the template)."""
    stop = answer_stop_ids(loaded) if end_of_turn else set()
    added, _ = prediction.generate_ids(loaded, ids[-prediction.MAX_TOKENS:], steps, stop_ids=stop)
    return loaded.tokenizer.decode([i for i in added if i not in stop])


def prefix_cache(model: torch.nn.Module, prefix: list[int]):
    """The keys and values of a prefix many rows share, to hand to `sequence_log_probs` (one forward, batch 1; one
    position's logits, never the prefix's (tokens x vocabulary): 200 MB for a 200-token few-shot prompt on Gemma)."""
    return model(input_ids=torch.tensor([prefix], device=device_of(model)), use_cache=True,
                 logits_to_keep=1).past_key_values


def sequence_log_probs(model: torch.nn.Module, sequences: list[tuple[list[int], list[int]]],
                       prefix: list[int] | None = None, cache=None) -> torch.Tensor:
    """log P(response | prefix + prompt) for each (prompt ids, response ids): the sum over the response's tokens, (n,).

    Left-padded so every response ends at the last position: only the last (longest response + 1) positions are
    unembedded, never the prompt's (tokens x vocabulary) logits. A `prefix` every row shares (a few-shot prompt's
    instruction and examples) is run once (or its `prefix_cache` passed in) and its keys and values reused by every
    row, the padding between it and each row masked out.
    """
    device = device_of(model)
    rows = [prompt + response for prompt, response in sequences]
    width = max(map(len, rows))
    keep = max(len(response) for _, response in sequences) + 1
    input_ids = torch.tensor([[0] * (width - len(r)) + r for r in rows], device=device)  # (n, width)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)  # (n, width)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (n, width): each row counts from its first real token
    shared = {}
    if prefix:
        cache = prefix_cache(model, prefix) if cache is None else copy.deepcopy(cache)
        cache.batch_repeat_interleave(len(rows))  # (n, heads, len(prefix), head_dim) per layer
        mask = torch.cat([torch.ones(len(rows), len(prefix), dtype=mask.dtype, device=device), mask], 1)
        positions = positions + len(prefix)  # (n, width)
        shared = dict(past_key_values=cache, use_cache=True)
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep,
                   **shared).logits  # (n, keep, vocab)
    log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (n, keep-1, vocab): predicts the last keep-1
    targets = input_ids[:, -(keep - 1):]  # (n, keep-1)
    chosen = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n, keep-1)
    lengths = torch.tensor([len(response) for _, response in sequences], device=device)
    in_response = torch.arange(keep - 1, device=device).unsqueeze(0) >= (keep - 1 - lengths).unsqueeze(1)
    return (chosen * in_response).sum(-1)  # (n,)
