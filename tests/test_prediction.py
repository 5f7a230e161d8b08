"""Next-token prediction against the model's own forward and generate (engine for the prediction page)."""

import numpy as np
import torch

from explorer import activations, prediction
from explorer.activations import run_capture, encode
from explorer.labels import token_label


def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    assert prediction.filter_distribution(logits, top_p=0.5).kept.tolist() == [True, False, False, False, False]
    assert prediction.filter_distribution(logits, top_p=0.6).kept.tolist() == [True, True, False, False, False]
    assert prediction.filter_distribution(logits, top_p=0.85).kept.tolist() == [True, True, True, False, False]
    assert prediction.filter_distribution(logits, top_p=0.86).kept.tolist() == [True, True, True, True, False]
    both = prediction.filter_distribution(logits, top_k=2, top_p=0.95)
    assert both.kept.sum() == 2 and abs(both.sampling_probs.sum() - 1) < 1e-12
    np.testing.assert_allclose(both.sampling_probs[:2], [0.5 / 0.7, 0.2 / 0.7])


def test_temperature_reshapes_and_zero_is_greedy():
    logits = np.array([2.0, 1.0, 0.0])
    hot, cold = prediction.filter_distribution(logits, 2.0), prediction.filter_distribution(logits, 0.5)
    assert hot.probs[0] < prediction.softmax(logits)[0] < cold.probs[0]
    assert prediction.filter_distribution(logits, 0.0).sampling_probs.tolist() == [1.0, 0.0, 0.0]


def test_greedy_steps_repeat_the_models_own_generate(smollm):
    text = "The capital of France is"
    added, chances = prediction.generate(smollm, text, steps=6, temperature=0.0)
    ids = torch.as_tensor(encode(smollm, text)[0])[None]
    with torch.inference_mode():
        reference = smollm.model.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1]:]
    assert added == reference.tolist()
    assert smollm.tokenizer.decode(added[:1]) == " Paris" and all(0 < c <= 1 for c in chances)


def test_a_seed_makes_a_sample_repeatable(smollm):
    first = prediction.generate(smollm, "옛날 옛적에", steps=4, temperature=1.0, top_p=0.9, seed=7)
    assert first == prediction.generate(smollm, "옛날 옛적에", steps=4, temperature=1.0, top_p=0.9, seed=7)


def test_logit_lens_at_the_last_layer_is_the_models_own_prediction(smollm):
    text = "고양이가 창가에 앉아 있다. The cat sits"
    layers = smollm.info.layers
    result = run_capture(smollm, text, ["blocks.*.resid_post"])
    states = np.stack([result[f"blocks.{i}.resid_post"] for i in range(layers)])  # (layers, seq, d)
    top_ids, top_probs = prediction.logit_lens(smollm, states)
    assert top_ids.shape == (layers, len(result.token_ids))
    with torch.inference_mode():
        logits = smollm.model(torch.as_tensor(result.token_ids)[None]).logits[0].double()  # (seq, vocab) reference
    np.testing.assert_array_equal(top_ids[-1], logits.argmax(-1).numpy())
    np.testing.assert_allclose(top_probs[-1], torch.softmax(logits, -1).max(-1).values.numpy(), atol=1e-4)


def test_chunked_log_probs_equal_the_unchunked_softmax(smollm, monkeypatch):
    ids = torch.as_tensor(encode(smollm, "The capital of France is Paris. 대한민국의 수도는 서울이다.")[0])
    with torch.inference_mode():
        output = smollm.model(ids[None], output_hidden_states=True)
        expected = torch.log_softmax(output.logits[0, :-1].double(), -1).gather(-1, ids[1:, None])[:, 0]  # (seq - 1,)
        for rows in (1_000, 7_777, 49_152):  # vocabulary slices with edges anywhere give the same numbers
            monkeypatch.setattr(activations, "LOGIT_CHUNK_BYTES", rows * 4 * (len(ids) - 1))
            chunked = activations.chosen_log_probs(smollm.parts, output.hidden_states[-1][0], ids)
            np.testing.assert_allclose(chunked.numpy(), expected.numpy(), atol=1e-4)


def test_surprisal_and_perplexity(smollm):
    reading = prediction.read_text(smollm, "The capital of France is Paris.")
    bits = reading.bits
    assert bits.shape == (len(reading.token_ids) - 1,) and np.all(bits >= 0)
    paris = reading.token_labels.index(" Paris") - 1
    assert bits[paris] < 3  # the model expected it
    assert 1 < prediction.perplexity(bits) < 1000
    assert smollm.tokenizer.decode([int(reading.next_logits.argmax())]) == reading.lens_labels[-1][-1]


def test_reading_a_long_text_keeps_no_vocabulary_sized_rows(smollm):
    reading = prediction.read_text(smollm, "가나다라마바사 " * 600, max_tokens=512, lens_positions=16)
    assert len(reading.token_ids) == 512 and reading.dropped_tokens > 0
    assert reading.bits.shape == (511,) and reading.lens_probs.shape == (smollm.info.layers, 16)
    arrays = [value for value in vars(reading).values() if isinstance(value, np.ndarray)]
    assert max(a.nbytes for a in arrays) <= smollm.info.vocab_size * 4  # the next token's logits are the largest


def test_byte_pieces_of_a_syllable_are_grouped_and_labelled_as_bytes(smollm):
    text = "대한민국의 수도는 서울이다. 🙂 ok"
    result = run_capture(smollm, text, ["token_log_probs"])
    bits = prediction.surprisal(result["token_log_probs"])
    groups = prediction.character_groups(text, result.offsets[1:], bits)
    assert "".join(piece for piece, _ in groups) == text[result.offsets[1][0]:]  # every character once, in order
    assert "\ufffd" not in "".join(piece for piece, _ in groups)
    np.testing.assert_allclose(sum(total for _, total in groups), bits.sum())  # surprisal adds up within a group
    partial = [int(i) for i, token in zip(result.token_ids, result.tokens) if "\ufffd" in token]
    assert partial, "Hangul splits into byte pieces in SmolLM2's vocabulary"
    label = token_label(smollm.tokenizer, partial[0])
    assert label.startswith("0x") and "\ufffd" not in label
    assert token_label(smollm.tokenizer, int(result.token_ids[-1])) == " ok"


def test_byte_tokens_wait_until_their_character_is_whole(smollm):
    ids = smollm.tokenizer("수", add_special_tokens=False)["input_ids"]  # a syllable SmolLM2 spells in byte pieces
    assert len(ids) > 1
    waiting: list[int] = []
    pieces = [prediction.complete_characters(smollm.tokenizer, waiting, token_id) for token_id in ids]
    assert pieces[:-1] == [None] * (len(ids) - 1) and pieces[-1] == "수" and waiting == []
    assert prediction.complete_characters(smollm.tokenizer, waiting, smollm.tokenizer.encode(" ok")[0]) == " ok"
