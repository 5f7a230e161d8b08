"""Prompting measured on the real models: label-word probabilities read from the model's own distribution (equal to
a forward by hand), accuracy equal to a count by hand, and what few-shot examples and their order do."""

import numpy as np
import pytest
import torch

from explorer import activations, prompting


def test_the_task_keeps_its_examples_out_of_the_test_and_balances_both():
    task = prompting.load_task()
    for language in ("ko", "en"):
        tested = {s["text"] for s in task.test[language]}
        assert not tested & {e["text"] for e in task.examples[language]}
        assert sorted(s["label"] for s in task.test[language]).count("positive") == len(tested) // 2
        for order in prompting.ORDERS:
            shots = prompting.ordered_examples(task, language, order)
            assert sorted(map(str, shots)) == sorted(map(str, task.examples[language]))
        assert prompting.ordered_examples(task, language, "positive_last")[-1]["label"] == "positive"


@pytest.fixture(scope="module")
def few_shot(gemma) -> dict:
    return {language: prompting.measure(gemma, language, "few_shot") for language in ("ko", "en")}


def test_label_probabilities_are_the_models_own_and_accuracy_is_a_count(gemma, few_shot):
    measured = few_shot["ko"]
    task = prompting.load_task()
    sentence = task.test["ko"][0]["text"]
    prompt = prompting.prompt_text(task, "ko", "few_shot", sentence)
    assert prompt == measured.prompt and prompt.endswith(f"문장: {sentence}\n평가:") and prompt.count("평가: ") == 4
    ids = [int(i) for i in activations.encode(gemma, prompt, None)[0]]
    for column, word in enumerate(["좋음", "나쁨"]):
        answer = gemma.tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = gemma.model(torch.as_tensor([ids + answer])).logits[0].double()  # (seq, vocab)
        by_hand = sum(float(torch.log_softmax(logits[len(ids) - 1 + k], -1)[token]) for k, token in enumerate(answer))
        assert np.log(measured.probabilities[0, column]) == pytest.approx(by_hand, abs=2e-3)
    right = sum(p == t for p, t in zip(measured.predicted, measured.labels))
    assert measured.accuracy == right / len(measured.labels)
    assert all(p == ("positive" if a >= b else "negative") for p, (a, b) in zip(measured.predicted, measured.probabilities))


def test_few_shot_examples_gather_the_probability_onto_the_labels(gemma, few_shot):
    """Measured on Gemma 3 270M (base): zero-shot, the two Korean label words get 0.1 % of the next word's mass, with
    four examples 90 %; yet in Korean every style stays at 50-58 % (the base model answers one label for almost every
    review), while in English few-shot reaches 100 %. (The order of the examples moves SmolLM2 in English: 100 %
    alternating, 50 % positives last, 58 % negatives last.)"""
    zero = prompting.measure(gemma, "ko", "zero_shot")
    assert few_shot["ko"].probabilities.sum(1).mean() > 50 * zero.probabilities.sum(1).mean()
    assert few_shot["en"].accuracy >= 0.9
