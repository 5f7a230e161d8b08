"""From base model to assistant on the real Gemma 3 270M (base): SFT measured on held-out instructions, a reward model
trained on preference pairs, best-of-n picking the candidate with the highest reward."""

import numpy as np
import pytest
import torch

from explorer import adapting, alignment
from explorer.models import weights_fingerprint


@pytest.fixture(scope="module")
def sft_run(gemma):
    data = alignment.bundled()
    fingerprint = weights_fingerprint(gemma.model)
    before = alignment.behaviour(gemma, data["held_out"])
    adapter = alignment.train_sft(gemma, data["sft"], adapting.LoraSettings(rank=8, steps=8, learning_rate=1e-3))
    tuned = adapting.with_adapter(gemma, adapter)
    after = alignment.behaviour(tuned, data["held_out"])
    assert weights_fingerprint(gemma.model) == fingerprint  # the shared model is untouched
    return before, adapter, tuned, after


def test_the_turn_format_is_gemmas_and_only_the_answer_is_scored(gemma):
    pair = alignment.bundled()["sft"][0]
    (example,), (prompt_length,) = alignment.check_sft(gemma.tokenizer, [pair], adapting.LoraSettings(steps=1))
    pieces = gemma.tokenizer.convert_ids_to_tokens(example)
    assert pieces[:3] == ["<bos>", "<start_of_turn>", "user"] and pieces[-1] == "<eos>"  # the end it was trained on
    assert gemma.tokenizer.decode(example[prompt_length:-1]) == pair.answer
    (_, _, labels), = adapting.micro_batches([example], 0, 1_000, [prompt_length])
    assert (labels[0, :prompt_length] == -100).all() and (labels[0, prompt_length:] != -100).all()


def test_sft_lowers_the_held_out_loss_and_is_measured_on_stopping(sft_run):
    before, adapter, _, after = sft_run
    print(f"held-out loss {before.loss:.2f} -> {after.loss:.2f}; stop share {before.stop_share:.0%} -> "
          f"{after.stop_share:.0%}; losses {adapter.losses[0]:.2f} -> {adapter.losses[-1]:.2f}")
    assert after.loss < before.loss
    assert adapter.losses[-1] < adapter.losses[0]
    assert after.stop_share >= before.stop_share


def test_the_reward_model_learns_and_best_of_n_keeps_the_highest_reward(gemma, sft_run):
    data = alignment.bundled()
    model = alignment.train_reward(gemma, data["preferences"], data["preferences_held_out"])
    print(f"reward: train {model.train_accuracy:.0%}, held-out {model.held_out_accuracy:.0%}, "
          f"loss {model.losses[0]:.3f} -> {model.losses[-1]:.3f}")
    assert model.losses[-1] < model.losses[0] and model.train_accuracy == 1.0
    assert 0 <= model.held_out_accuracy <= 1
    pair = data["preferences_held_out"][0]
    scores = alignment.rewards(gemma, model, pair.prompt, [pair.chosen, pair.rejected])
    features = alignment.answer_features(gemma, [pair.prompt], [pair.chosen])
    assert scores[0] == pytest.approx(float(model.score(features)[0]), rel=1e-5)
    _, _, tuned, _ = sft_run
    found = alignment.best_of_n(tuned, gemma, model, "일본의 수도는 어디인가요?", n=2)
    assert len(found.answers) == 2 and found.best == int(np.argmax(found.rewards))
    np.testing.assert_allclose(found.rewards, alignment.rewards(gemma, model, "일본의 수도는 어디인가요?", found.answers),
                               rtol=1e-5)
    with pytest.raises(adapting.TrainingError):
        alignment.rewards(tuned, model, pair.prompt, [pair.chosen])  # scored only on the model it was trained on


def test_bad_instruction_sets_are_refused_with_a_reason(gemma):
    settings = adapting.LoraSettings(steps=4)
    for pairs, kind in (([], "no_instructions"), ([alignment.Instruction("질문", "")], "incomplete_instruction"),
                        ([alignment.Instruction("😀" * 5_000, "답")], "example_too_long"),
                        ([alignment.Instruction(f"질문 {i}", "답") for i in range(17)], "too_many_examples")):
        with pytest.raises(adapting.TrainingError) as refused:
            alignment.check_sft(gemma.tokenizer, pairs, settings)
        assert refused.value.kind == kind
    assert torch.is_grad_enabled()  # nothing left switched off


def test_dpo_starts_from_the_sft_model_and_measures_against_it(gemma, sft_run):
    """The reference is the SFT model: the first step's loss is exactly log 2 (policy = reference), which it would
    not be against the base model; the chosen answers gain on the SFT model, and the stages answer in one batch."""
    _, adapter, tuned, after = sft_run
    pairs = alignment.bundled()["preferences"][:2]
    fingerprint = weights_fingerprint(gemma.model)
    dpo = alignment.train_dpo(gemma, pairs, alignment.DpoSettings(steps=2, learning_rate=1e-4), start=adapter)
    assert dpo.losses[0] == pytest.approx(np.log(2), abs=1e-4) and dpo.config.r == adapter.config.r
    preferred = adapting.with_adapter(gemma, dpo)
    assert (alignment.log_prob_margins(preferred, pairs) > alignment.log_prob_margins(tuned, pairs)).all()
    assert weights_fingerprint(gemma.model) == fingerprint
    written, stopped = alignment.answers(tuned, [p.instruction for p in alignment.bundled()["held_out"]])
    assert (written, stopped) == (after.answers, after.stopped)  # the batch behind the SFT part's table
    with pytest.raises(adapting.TrainingError):
        alignment.train_dpo(preferred, pairs, alignment.DpoSettings(steps=1), start=adapter)  # another model's SFT
