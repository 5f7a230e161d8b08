"""QLoRA, measured: LoRA on a frozen quantized copy of the model beside LoRA on the float model, on the same examples.

The quantized copy is the one the quantization page runs (torchao's weight-only int8 or int4 tensors, a memory-budget
resident); PEFT wraps each of its torchao Linears in its own `TorchaoLoraLinear`, so gradients flow through the
frozen integer weights into float32 adapter matrices. (The QLoRA paper's NF4 codes and paged optimizer are
bitsandbytes' CUDA kernels; torchao's int4 groups are the same idea on a CPU.)

What a training step holds is measured from the tensors themselves, not the process: the frozen and trainable
weights as stored, every gradient after the backward pass, AdamW's state after its step, and the activations autograd
saves for the backward pass (a saved-tensors hook adds up every tensor it keeps that is not a weight). Full
fine-tuning's activations are measured the same way on a forward with every weight trainable; its gradients and
optimizer state are counted from the parameters (4 + 8 bytes each in float32), not allocated: on SmolLM2 they would
be 1.6 GB, more than the process's whole budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from explorer import adapting, memory, quantize
from explorer.adapting import LoraSettings
from explorer.jobs import Job
from explorer.models import LoadedModel

METHODS = ("full", "lora", "qlora")
SCHEMES = ("int4_group", "int8_channel")  # the frozen copy QLoRA trains on
SCALES = (7e9, 70e9)  # the sizes the arithmetic is done for


@dataclass(frozen=True)
class StepMemory:
    """Bytes one training step holds, by what holds them."""
    frozen: int  # weights that do not train, as stored
    trainable: int  # weights that train
    gradients: int
    optimizer: int  # AdamW's moments
    activations: int  # saved for the backward pass, the largest micro-batch's

    @property
    def total(self) -> int:
        return self.frozen + self.trainable + self.gradients + self.optimizer + self.activations


@dataclass
class Comparison:
    scheme: str  # the copy QLoRA trained on
    parameters: int  # the model's
    lora_losses: list[float]
    qlora_losses: list[float]
    lora_seconds: float  # per step (after the first)
    qlora_seconds: float
    memory: dict[str, StepMemory]  # method -> what its step holds
    quantized_matrix_bytes: int  # the copy's block matrices as stored
    quantized_matrix_parameters: int


def compare(loaded: LoadedModel, text: str, settings: LoraSettings, scheme: str = "int4_group",
            job: Job | None = None) -> Comparison:
    """LoRA on the float model, then on its quantized copy (same examples, settings and seed); what each step holds,
    and full fine-tuning's step counted beside them. Reports 2 × steps to the job."""
    examples = adapting.check_lora(loaded.tokenizer, text, settings)
    copy = quantize.quantized(loaded, quantize.Scheme(scheme))
    lora_memory, qlora_memory = {}, {}
    lora_steps, qlora_steps = _Steps(job, 0), _Steps(job, settings.steps)
    lora = adapting.train_examples(loaded, examples, settings, lora_steps, measured=lora_memory)
    qlora = adapting.train_examples(copy.loaded, examples, settings, qlora_steps, measured=qlora_memory)
    weights = memory.tensor_bytes(loaded.model)  # float32: its gradients take as much, AdamW's two moments twice
    full = StepMemory(0, weights, weights, 2 * weights, full_activations(loaded, examples))
    return Comparison(scheme, loaded.info.parameters, lora.losses, qlora.losses, lora_steps.seconds(),
                      qlora_steps.seconds(),
                      {"full": full, "lora": StepMemory(**lora_memory), "qlora": StepMemory(**qlora_memory)},
                      copy.matrix_bytes, copy.matrix_parameters)


class _Steps:
    """A training's steps as the job sees them (the second training's counted after the first's), and their times."""

    def __init__(self, job: Job | None, before: int):
        self.job, self.before = job, before
        self.times = [time.perf_counter()]

    def report(self, step: int, loss: float | None = None) -> None:
        self.times.append(time.perf_counter())
        if self.job is not None:
            self.job.report(self.before + step, loss)

    def seconds(self) -> float:
        """Per step, the first left out where there are more: it pays for the process's first allocations."""
        durations = [b - a for a, b in zip(self.times, self.times[1:])]
        return sum(durations[1:]) / (len(durations) - 1) if len(durations) > 1 else durations[0]


def full_activations(loaded: LoadedModel, examples: list[list[int]]) -> int:
    """What full fine-tuning saves for its backward pass, measured on forwards with every weight trainable (a frozen
    view's own Parameters, so the shared model is untouched) and no backward: no gradient is ever allocated."""
    view = adapting.frozen_view(loaded)
    for parameter in view.parameters():
        parameter.requires_grad_(True)
    largest = 0
    for input_ids, mask, labels in adapting.training_batches(loaded, examples):
        with adapting.SavedTensors(view) as saved:
            loss = adapting.scored_loss(view, input_ids, mask, labels)
        del loss  # the graph and what it saved go with it
        largest = max(largest, saved.bytes)
    return largest


def at_scale(comparison: Comparison, parameters: float) -> dict[str, float]:
    """Bytes per method for a model of `parameters`, from the bytes per parameter measured here (weights, gradients,
    optimizer state; LoRA's adapter at the share trained here). Activations depend on batch and length: left out."""
    ratio = parameters / comparison.parameters
    return {method: ratio * (m.frozen + m.trainable + m.gradients + m.optimizer)
            for method, m in comparison.memory.items()}


def published_at_scale(parameters: float) -> dict[str, float]:
    """The same arithmetic as the papers do it: full fine-tuning in mixed precision (bf16 weights and gradients,
    float32 master weights and AdamW moments: 16 bytes a parameter), LoRA on bf16 weights (2), QLoRA on NF4 codes
    with double-quantized scales (4.127 bits a parameter, the QLoRA paper's); the adapters left out."""
    return {"full": 16 * parameters, "lora": 2 * parameters, "qlora": 4.127 / 8 * parameters}
