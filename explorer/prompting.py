"""Prompting, measured: the same labelled task asked zero-shot, with an instruction, and few-shot, on any decoder.

The task (assets/adapting/prompting.json) is sentiment: Korean and English reviews, each positive or negative. A
prompt ends with a cue ("감정:" / "Sentiment:"), and the model's answer is read from its own distribution: the
probability of each label word (" 긍정" / " 부정", " positive" / " negative") as the continuation, the sum of its
tokens' log-probabilities (one token on Gemma; several bytes on SmolLM2 in Korean). The likelier label is the
model's answer; accuracy counts those against the labels. Few-shot prompts also come in three orders of the same
examples, since the order alone moves a small model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from explorer.activations import encode
from explorer.adapting import prefix_cache, sequence_log_probs
from explorer.models import LoadedModel

TASK = Path(__file__).resolve().parent.parent / "assets" / "adapting" / "prompting.json"
STYLES = ("zero_shot", "instruction", "few_shot")
ORDERS = ("alternating", "positive_last", "negative_last")  # of the few-shot examples
LABELS = ("positive", "negative")
ROWS_PER_FORWARD = 8  # prompts x labels per batched forward: bounds the (rows x vocabulary) logits it keeps
MIN_SHARED = 16  # a shared prefix at least this long is run once and reused from the KV cache


@dataclass(frozen=True)
class Task:
    labels: dict[str, dict[str, str]]  # label -> language -> word
    cue: dict[str, str]
    sentence: dict[str, str]
    instruction: dict[str, str]
    examples: dict[str, list[dict]]  # language -> [{"text", "label"}] for few-shot prompts
    test: dict[str, list[dict]]  # language -> the sentences measured


@lru_cache(maxsize=1)
def load_task(path: Path = TASK) -> Task:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Task(data["labels"], data["cue"], data["sentence"], data["instruction"], data["examples"], data["test"])


def ordered_examples(task: Task, language: str, order: str) -> list[dict]:
    examples = task.examples[language]
    if order == "alternating":
        return examples  # the file alternates: positive, negative, positive, negative
    last = "positive" if order == "positive_last" else "negative"
    return [e for e in examples if e["label"] != last] + [e for e in examples if e["label"] == last]


def prompt_text(task: Task, language: str, style: str, sentence: str, order: str = "alternating") -> str:
    """zero_shot: the sentence and the cue; instruction: an instruction first; few_shot: the instruction and four
    answered examples in `order`, then the sentence."""
    named, cue = task.sentence[language], task.cue[language]
    query = f"{named}: {sentence}\n{cue}:"
    if style == "zero_shot":
        return query
    head = task.instruction[language] + "\n\n"
    if style == "instruction":
        return head + query
    shots = "".join(f"{named}: {e['text']}\n{cue}: {task.labels[e['label']][language]}\n\n"
                    for e in ordered_examples(task, language, order))
    return head + shots + query


@torch.inference_mode()
def label_log_probs(loaded: LoadedModel, prompts: list[str], words: list[str]) -> np.ndarray:
    """log P(" " + word | prompt) for every prompt and word: (prompts, words), from the model's own distribution."""
    tokenizer = loaded.tokenizer
    answers = [tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in words]
    encoded = [[int(i) for i in encode(loaded, prompt, None)[0]] for prompt in prompts]
    shared = _common_prefix(encoded)  # few-shot: the instruction and the examples, the same in every prompt
    shared = shared if shared >= MIN_SHARED else 0
    pairs = [(ids[shared:], answer) for ids in encoded for answer in answers]
    found = []
    with loaded.lock:
        cache = prefix_cache(loaded.model, encoded[0][:shared]) if shared else None
        for start in range(0, len(pairs), ROWS_PER_FORWARD):
            found.append(sequence_log_probs(loaded.model, pairs[start:start + ROWS_PER_FORWARD],
                                            encoded[0][:shared], cache).float().cpu())
    return torch.cat(found).numpy().reshape(len(prompts), len(words))


def _common_prefix(encoded: list[list[int]]) -> int:
    """How many leading ids every row shares, leaving each row one of its own at least."""
    shortest = min(map(len, encoded)) - 1
    for length in range(shortest):
        if len({ids[length] for ids in encoded}) > 1:
            return length
    return max(0, shortest)


@dataclass
class Measured:
    language: str
    style: str
    order: str  # the few-shot order ("" for the other styles)
    probabilities: np.ndarray  # (sentences, 2) P(positive word), P(negative word) as the next words
    labels: list[str]  # (sentences,) the true labels
    predicted: list[str]  # (sentences,) the likelier label word
    prompt: str  # the first sentence's prompt, as the model reads it

    @property
    def accuracy(self) -> float:
        return float(np.mean([p == t for p, t in zip(self.predicted, self.labels)]))


def measure(loaded: LoadedModel, language: str, style: str, order: str = "alternating") -> Measured:
    task = load_task()
    sentences = task.test[language]
    prompts = [prompt_text(task, language, style, s["text"], order) for s in sentences]
    log_probs = label_log_probs(loaded, prompts, [task.labels[label][language] for label in LABELS])  # (n, 2)
    predicted = [LABELS[int(i)] for i in log_probs.argmax(axis=1)]
    return Measured(language, style, order if style == "few_shot" else "", np.exp(log_probs),
                    [s["label"] for s in sentences], predicted, prompts[0])


def measure_all(loaded: LoadedModel, language: str) -> list[Measured]:
    """Every style, and few-shot in every order: five prompts per sentence."""
    return [measure(loaded, language, style) for style in STYLES[:2]] + \
        [measure(loaded, language, "few_shot", order) for order in ORDERS]
