"""From base model to assistant, live: supervised fine-tuning (SFT) on instructions, a reward model trained on
preference pairs, best-of-n sampling with that reward (the first step of RLHF), and preference tuning (DPO) that
starts from the SFT model.

SFT teaches the base model a turn format: the instruction between Gemma's own turn markers (its vocabulary has
`<start_of_turn>` and `<end_of_turn>` even in the base model, ids 105 and 106), then the answer, then the end of
text (see `end_of_answer`). A model that has a chat template is taught its own. The loss counts the answer's tokens
only.

The reward model is a scalar head on the frozen model's final (normed) state at the answer's last token, trained
with the Bradley–Terry loss −log σ(r(chosen) − r(rejected)). Hand-written rather than TRL's RewardTrainer: the
features are computed once from the frozen model, so training is a few hundred steps of one linear layer, and TRL
would bring a trainer, datasets and a second copy of the model to work around.

DPO is hand-written for the same reason (the loss is three lines): its reference model is the policy before the first
step, so a run that starts from the SFT adapter is measured against the SFT model, as in the paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from peft import set_peft_model_state_dict

from explorer import prediction

from explorer.adapting import (MAX_EXAMPLES, MAX_TRAINING_TOKENS, Adapter, LoraSettings, TrainingError, adapter_of,
                               answer_stop_ids, check_lora_settings, lora_config, lora_model, sequence_log_probs,
                               train_examples)
from explorer.jobs import Job
from explorer.models import LoadedModel, device_of

DATA = Path(__file__).resolve().parent.parent / "assets" / "adapting" / "alignment.json"
TURN = "<start_of_turn>user\n{instruction}<end_of_turn>\n<start_of_turn>model\n"  # Gemma's own format
END_OF_TURN = "<end_of_turn>"
MAX_INSTRUCTION_TOKENS = 96  # an instruction with its answer; longer is refused, naming it
ANSWER_TOKENS = 32  # how far an answer is written when measuring whether it stops
REWARD_STEPS = 300
MAX_PAIRS = 8  # DPO's pairs: each step runs every pair through the model twice
MAX_RESPONSE_TOKENS = 48


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class DpoSettings(LoraSettings):
    """A LoRA adapter's settings, trained on preference pairs: fewer steps, a gentler rate, and DPO's beta."""
    steps: int = 12
    learning_rate: float = 1e-3
    beta: float = 0.1


@dataclass(frozen=True)
class Instruction:
    instruction: str
    answer: str


@lru_cache(maxsize=1)
def bundled() -> dict:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    return {"sft": [Instruction(**row) for row in data["sft"]],
            "held_out": [Instruction(**row) for row in data["held_out"]],
            "preferences": [PreferencePair(**row) for row in data["preferences"]],
            "preferences_held_out": [PreferencePair(**row) for row in data["preferences_held_out"]]}


# ---------------------------------------------------------------- the turn format SFT teaches

def turn_text(tokenizer, instruction: str) -> str:
    """The instruction as one user turn, ready for the answer: the model's chat template, or Gemma's format."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True,
                                             tokenize=False)
    return (tokenizer.bos_token or "") + TURN.format(instruction=instruction)


def end_of_answer(tokenizer) -> str:
    """What an answer ends with: a chat model's end-of-turn marker when its vocabulary has it as one token, else the
    end of text. A base model's markers were never trained. Measured on Gemma's base: `<end_of_turn>`'s embedding
    sits among the unused tokens (cosine 0.995 with `<unused1354>` and hundreds more), and with tied embeddings LoRA
    cannot set it apart: SFT taught to end with it wrote junk tokens where it meant to stop ('…입니다.jiwarl'), and
    DPO on top collapsed into them. `<eos>` ends every pretraining document (its nearest tokens are newlines):
    8 SFT steps end 83 % of the held-out answers with it (bench_alignment)."""
    if getattr(tokenizer, "chat_template", None):
        marker = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if marker not in (None, tokenizer.unk_token_id):
            return END_OF_TURN
    return tokenizer.eos_token or ""


def turn_stop_ids(loaded: LoadedModel) -> set[int]:
    """The ids that end an answer in the turn format: the model's own stop ids and the end-of-answer marker."""
    return answer_stop_ids(loaded) | {loaded.tokenizer.convert_tokens_to_ids(end_of_answer(loaded.tokenizer))}


def prompt_ids(tokenizer, instruction: str) -> list[int]:
    return list(tokenizer(turn_text(tokenizer, instruction), add_special_tokens=False)["input_ids"])


def answer_ids(tokenizer, answer: str, limit: int | None = None) -> list[int]:
    """The answer's tokens (the first `limit`), then the end-of-answer marker."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"][:limit]
    return list(ids) + list(tokenizer(end_of_answer(tokenizer), add_special_tokens=False)["input_ids"])


def check_sft(tokenizer, pairs: list[Instruction], settings: LoraSettings) -> tuple[list[list[int]], list[int]]:
    """(examples, prompt lengths): each instruction and its answer as one example; refused with a reason."""
    check_lora_settings(settings)
    pairs = [p for p in pairs if p.instruction.strip() or p.answer.strip()]
    if not pairs:
        raise TrainingError("no_instructions")
    if len(pairs) > MAX_EXAMPLES:
        raise TrainingError("too_many_examples", f"{len(pairs)} > {MAX_EXAMPLES}")
    examples, lengths = [], []
    for number, pair in enumerate(pairs, start=1):
        if not pair.instruction.strip() or not pair.answer.strip():
            raise TrainingError("incomplete_instruction", str(number))
        if len(pair.instruction) + len(pair.answer) > 20 * MAX_INSTRUCTION_TOKENS:  # never tokenize a huge paste
            raise TrainingError("example_too_long", f"{number}: > {MAX_INSTRUCTION_TOKENS}")
        prompt, answer = prompt_ids(tokenizer, pair.instruction), answer_ids(tokenizer, pair.answer)
        if len(prompt) + len(answer) > MAX_INSTRUCTION_TOKENS:
            raise TrainingError("example_too_long", f"{number}: {len(prompt) + len(answer)} > {MAX_INSTRUCTION_TOKENS}")
        examples.append(prompt + answer)
        lengths.append(len(prompt))
    work = settings.steps * sum(map(len, examples))
    if work > MAX_TRAINING_TOKENS:
        raise TrainingError("too_much_training", f"{settings.steps} × {sum(map(len, examples)):,} = {work:,} > "
                                                 f"{MAX_TRAINING_TOKENS:,}")
    return examples, lengths


def train_sft(loaded: LoadedModel, pairs: list[Instruction], settings: LoraSettings, job: Job | None = None):
    """A LoRA adapter that teaches the base model to answer in turns and stop (the answer's tokens scored only)."""
    examples, lengths = check_sft(loaded.tokenizer, pairs, settings)
    return train_examples(loaded, examples, settings, job, unscored=lengths)


@dataclass
class Behaviour:
    """How a model answers held-out instructions in the turn format."""

    answers: list[str]  # greedy, up to ANSWER_TOKENS tokens, special tokens left out
    stopped: list[bool]  # whether it ended its turn within them, as an assistant does
    loss: float  # mean negative log-likelihood per token of the reference answers (end of turn included)

    @property
    def stop_share(self) -> float:
        return float(np.mean(self.stopped)) if self.stopped else 0.0


@torch.inference_mode()
def answers(loaded: LoadedModel, instructions: list[str], steps: int = ANSWER_TOKENS) -> tuple[list[str], list[bool]]:
    """Greedy answers to every instruction at once in the turn format (transformers' `generate`, one left-padded
    batch), special tokens left out, and whether each ended its turn within `steps` tokens."""
    tokenizer, device = loaded.tokenizer, device_of(loaded.model)
    stop = turn_stop_ids(loaded)
    prompts = [prompt_ids(tokenizer, instruction)[-prediction.MAX_TOKENS:] for instruction in instructions]
    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)  # (n, width)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with loaded.lock:
        written = loaded.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=steps, do_sample=False,
                                        eos_token_id=sorted(stop), pad_token_id=pad)[:, width:].tolist()
    texts, stopped = [], []
    for row in written:
        ended = next((i for i, token in enumerate(row) if token in stop), None)
        stopped.append(ended is not None)
        texts.append(tokenizer.decode(row[:ended], skip_special_tokens=True).strip())
    return texts, stopped


@torch.inference_mode()
def behaviour(loaded: LoadedModel, pairs: list[Instruction], steps: int = ANSWER_TOKENS) -> Behaviour:
    """The greedy answers to held-out instructions, whether each ended its turn, and the loss of the references."""
    written, stopped = answers(loaded, [pair.instruction for pair in pairs], steps)
    sequences = [(prompt_ids(loaded.tokenizer, pair.instruction), answer_ids(loaded.tokenizer, pair.answer))
                 for pair in pairs]
    with loaded.lock:
        total = sum(float(sequence_log_probs(loaded.model, [pair])[0]) for pair in sequences)
    return Behaviour(written, stopped, -total / sum(len(answer) for _, answer in sequences))


# ---------------------------------------------------------------- the reward model

@torch.inference_mode()
def answer_features(loaded: LoadedModel, prompts: list[str], answers: list[str]) -> np.ndarray:
    """The frozen model's final (normed) state at each answer's last token, in the turn format: (n, d)."""
    tokenizer, device = loaded.tokenizer, device_of(loaded.model)
    found = []
    with loaded.lock:
        for prompt, answer in zip(prompts, answers):
            ids = prompt_ids(tokenizer, prompt) + answer_ids(tokenizer, answer)[-MAX_INSTRUCTION_TOKENS:]
            output = loaded.model(torch.as_tensor([ids], device=device), output_hidden_states=True, logits_to_keep=1)
            found.append(output.hidden_states[-1][0, -1].float().cpu().numpy())  # (d,)
    return np.stack(found)


@dataclass
class RewardModel:
    base_fingerprint: str
    mean: np.ndarray  # (d,) the training features' mean and spread: features are standardised first
    spread: np.ndarray
    weight: np.ndarray  # (d,)
    bias: float
    losses: list[float]
    train_accuracy: float
    held_out_accuracy: float  # share of held-out pairs whose chosen answer gets the higher reward

    def score(self, features: np.ndarray) -> np.ndarray:  # (n, d) -> (n,)
        return ((features - self.mean) / self.spread) @ self.weight + self.bias


def train_reward(loaded: LoadedModel, pairs: list[PreferencePair], held_out: list[PreferencePair],
                 steps: int = REWARD_STEPS, seed: int = 0, job: Job | None = None) -> RewardModel:
    """Bradley–Terry on a linear head over frozen features: minimise −log σ(r(chosen) − r(rejected))."""
    pairs = [p for p in pairs if p.prompt.strip() and p.chosen.strip() and p.rejected.strip()]
    if len(pairs) < 2:
        raise TrainingError("no_pairs")
    chosen = answer_features(loaded, [p.prompt for p in pairs], [p.chosen for p in pairs])  # (n, d)
    rejected = answer_features(loaded, [p.prompt for p in pairs], [p.rejected for p in pairs])  # (n, d)
    both = np.concatenate([chosen, rejected])
    mean, spread = both.mean(0), both.std(0) + 1e-4
    torch.manual_seed(seed)
    head = torch.nn.Linear(both.shape[1], 1)
    torch.nn.init.zeros_(head.weight)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-2)
    good = torch.as_tensor((chosen - mean) / spread, dtype=torch.float32)  # (n, d)
    bad = torch.as_tensor((rejected - mean) / spread, dtype=torch.float32)
    losses = []
    for step in range(1, steps + 1):
        loss = -torch.nn.functional.logsigmoid(head(good) - head(bad)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if job is not None and step % 25 == 0:
            job.report(step, float(loss))
    weight, bias = head.weight.detach()[0].numpy(), float(head.bias.detach()[0])
    model = RewardModel(loaded.fingerprint, mean, spread, weight, bias, losses, 0.0, 0.0)
    model.train_accuracy = pair_accuracy(model, chosen, rejected)
    if held_out:
        model.held_out_accuracy = pair_accuracy(
            model, answer_features(loaded, [p.prompt for p in held_out], [p.chosen for p in held_out]),
            answer_features(loaded, [p.prompt for p in held_out], [p.rejected for p in held_out]))
    return model


def pair_accuracy(model: RewardModel, chosen: np.ndarray, rejected: np.ndarray) -> float:
    return float(np.mean(model.score(chosen) > model.score(rejected)))


def rewards(loaded: LoadedModel, model: RewardModel, prompt: str, answers: list[str]) -> np.ndarray:
    """The reward of each answer to `prompt` (the features from the model the reward model was trained on)."""
    if model.base_fingerprint != loaded.fingerprint:
        raise TrainingError("adapter_other_model")
    return model.score(answer_features(loaded, [prompt] * len(answers), answers))


# ---------------------------------------------------------------- best-of-n

@dataclass
class Candidates:
    answers: list[str]
    rewards: np.ndarray  # (n,)

    @property
    def best(self) -> int:
        return int(np.argmax(self.rewards))


def best_of_n(policy: LoadedModel, judge: LoadedModel, model: RewardModel, instruction: str, n: int = 4,
              temperature: float = 0.9, seed: int = 0) -> Candidates:
    """n sampled answers from the policy (the SFT model), each scored by the reward model (on the frozen `judge`)."""
    tokenizer = policy.tokenizer
    stop = turn_stop_ids(policy)
    prompt = prompt_ids(tokenizer, instruction)
    answers = []
    for index in range(n):
        added, _ = prediction.generate_ids(policy, prompt, ANSWER_TOKENS, temperature, seed=seed + index, stop_ids=stop)
        answers.append(tokenizer.decode([i for i in added if i not in stop], skip_special_tokens=True).strip())
    return Candidates(answers, rewards(judge, model, instruction, answers))


# ---------------------------------------------------------------- preference tuning (DPO)

def pair_ids(tokenizer, pair: PreferencePair) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) ids in the turn format SFT teaches (a chat model's own template)."""
    prompt = prompt_ids(tokenizer, pair.prompt)[-prediction.MAX_TOKENS:]
    return (prompt, answer_ids(tokenizer, pair.chosen, MAX_RESPONSE_TOKENS),
            answer_ids(tokenizer, pair.rejected, MAX_RESPONSE_TOKENS))


def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta: float):
    """DPO (Rafailov et al., 2023): raise the chosen answer's log-probability relative to the reference model
    more than the rejected one's. Returns the loss and the implicit reward margin."""
    margin = beta * ((policy_chosen - reference_chosen) - (policy_rejected - reference_rejected))
    return -torch.nn.functional.logsigmoid(margin), margin


def check_pairs(pairs: list[PreferencePair]) -> list[PreferencePair]:
    pairs = [p for p in pairs if p.prompt.strip() or p.chosen.strip() or p.rejected.strip()]
    if not pairs:
        raise TrainingError("no_pairs")
    if len(pairs) > MAX_PAIRS:
        raise TrainingError("too_many_pairs", f"{len(pairs)} > {MAX_PAIRS}")
    for number, pair in enumerate(pairs, start=1):
        if not (pair.prompt.strip() and pair.chosen.strip() and pair.rejected.strip()):
            raise TrainingError("incomplete_pair", str(number))
        if pair.chosen.strip() == pair.rejected.strip():
            raise TrainingError("same_answers", str(number))
        if max(len(pair.prompt), len(pair.chosen), len(pair.rejected)) > 2_000:
            raise TrainingError("example_too_long", f"{number}: > 2,000")
    return pairs


def log_prob_margins(loaded: LoadedModel, pairs: list[PreferencePair]) -> np.ndarray:
    """log P(chosen) − log P(rejected) for each pair under the model: how much it prefers the chosen answer, (n,)."""
    margins = []
    with loaded.lock, torch.inference_mode():
        for pair in check_pairs(pairs):
            prompt, chosen, rejected = pair_ids(loaded.tokenizer, pair)
            both = sequence_log_probs(loaded.model, [(prompt, chosen), (prompt, rejected)])  # (2,)
            margins.append(float(both[0] - both[1]))
    return np.array(margins)


def train_dpo(loaded: LoadedModel, pairs: list[PreferencePair], settings: DpoSettings, job: Job | None = None,
              start: Adapter | None = None) -> Adapter:
    """A few DPO steps on a LoRA adapter: a new one, or the SFT adapter `start` trained on (its rank, not the
    settings'). The reference model is the policy before the first step: the base model, or the SFT model."""
    check_lora_settings(LoraSettings(settings.rank, settings.steps, settings.learning_rate))
    pairs = check_pairs(pairs)
    if start is not None and start.base_fingerprint != loaded.fingerprint:
        raise TrainingError("adapter_other_model")
    model = lora_model(loaded, start.config if start is not None else lora_config(settings.rank), settings.seed)
    if start is not None:
        set_peft_model_state_dict(model, start.weights)
    encoded = [pair_ids(loaded.tokenizer, pair) for pair in pairs]
    with torch.no_grad():
        reference = [sequence_log_probs(model, [(p, c), (p, r)]) for p, c, r in encoded]  # n x (2,)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    losses = []
    model.train()
    for step in range(1, settings.steps + 1):
        total_loss, total_margin = 0.0, 0.0
        for (prompt, chosen, rejected), ref in zip(encoded, reference):  # one pair per forward bounds the memory
            policy = sequence_log_probs(model, [(prompt, chosen), (prompt, rejected)])  # (2,)
            loss, _ = dpo_loss(policy[0], policy[1], ref[0], ref[1], settings.beta)
            (loss / len(encoded)).backward()
            total_loss += float(loss.detach()) / len(encoded)
            total_margin += float((policy[0] - policy[1]).detach()) / len(encoded)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total_loss)
        if job is not None:
            job.report(step, total_loss, margin=total_margin)
    return adapter_of(loaded, model, losses)
