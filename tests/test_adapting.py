"""Adapting, on the real bundled models: transfer learning on MiniLM, LoRA (PEFT) and DPO on SmolLM2, the chat
template, and the one-at-a-time training queue. The shared model must come out of all of it unchanged."""

import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from peft import PeftModel

from explorer import activations, adapting, alignment, api, distill, embeddings, jobs, qlora, quantize, transfer
from explorer.models import weights_fingerprint

MASCOT = adapting.presets()["lora"]["fact"]


def _logits(model, tokenizer, text: str) -> torch.Tensor:
    with torch.inference_mode():
        return model(**tokenizer(text, return_tensors="pt")).logits  # (1, seq, vocab)


# ---------------------------------------------------------------- transfer learning

@pytest.fixture(scope="module")
def topic_vectors(minilm):
    topics = transfer.load_topics()
    return topics, {"pretrained": {language: embeddings.sentence_embeddings(minilm, topics.texts[language])
                                   for language in transfer.LANGUAGES}}


def test_the_bundled_topic_set_is_balanced_and_translated():
    topics = transfer.load_topics()
    assert len(topics.classes) == 4 and np.bincount(topics.labels).tolist() == [48] * 4
    assert all(len(topics.texts[language]) == 192 for language in transfer.LANGUAGES)
    assert all(any("\uac00" <= ch <= "\ud7a3" for ch in sentence) for sentence in topics.texts["ko"])
    assert len(set(topics.texts["en"])) == len(set(topics.texts["ko"])) == 192


def test_splits_never_test_on_a_labelled_sentence():
    labels = transfer.load_topics().labels
    for per_class in transfer.PER_CLASS:
        train, test = transfer.split(labels, per_class, seed=3)
        assert not set(train) & set(test)
        assert np.bincount(labels[train]).tolist() == [per_class] * 4
        assert np.bincount(labels[test]).tolist() == [transfer.TEST_PER_CLASS] * 4


def test_learning_curves_are_reproducible_and_pretrained_features_win_in_english(topic_vectors):
    topics, vectors = topic_vectors
    first = transfer.learning_curves(vectors, topics, repeats=3, seed=0)
    assert first == transfer.learning_curves(vectors, topics, repeats=3, seed=0)  # seeded: a lecture replays it
    at = {(r["language"], r["method"], r["per_class"]): r["accuracy"] for r in first}
    assert at["en", "pretrained", 16] > at["en", "tfidf", 16] + 0.2  # measured: 0.98 against 0.53
    assert at["en", "pretrained", 16] > 0.9
    assert at["ko", "pretrained", 16] < at["en", "pretrained", 16] - 0.3  # English-only pre-training: says so
    assert all(r["low"] <= r["accuracy"] <= r["high"] for r in first)


def test_encoder_fine_tune_leaves_the_shared_encoder_unchanged(minilm):
    fingerprint = weights_fingerprint(minilm.model)
    result = transfer.fine_tune_encoder(minilm, "en", per_class=4, epochs=3, seed=0)
    assert weights_fingerprint(minilm.model) == fingerprint
    assert all(p.requires_grad for p in minilm.model.parameters())  # not even its flags were touched
    assert result.losses[-1] < result.losses[0]
    assert result.after.shape == result.before.shape == (192, minilm.info.hidden_size)
    assert not np.allclose(result.after, result.before)
    np.testing.assert_allclose(result.before, embeddings.sentence_embeddings(minilm, transfer.load_topics().texts["en"]))
    assert 0.8 <= result.accuracy_before <= 1 and 0.8 <= result.accuracy_after <= 1


# ---------------------------------------------------------------- LoRA

@pytest.fixture(scope="module")
def mascot_adapter(smollm):
    fingerprint = weights_fingerprint(smollm.model)
    adapter = adapting.train_lora(smollm, "\n".join(MASCOT["examples"]), adapting.LoraSettings(steps=15))
    assert weights_fingerprint(smollm.model) == fingerprint  # the shared model never changes
    return adapter


def test_lora_lowers_the_loss_and_teaches_the_continuation(smollm, mascot_adapter):
    losses = mascot_adapter.losses
    assert len(losses) == 15 and losses[-1] < 0.5 * losses[0]
    adapted = adapting.with_adapter(smollm, mascot_adapter)
    prompt, continuation = MASCOT["taught"]
    before = adapting.continuation_probability(smollm, prompt, continuation)
    after = adapting.continuation_probability(adapted, prompt, continuation)
    assert before < 0.01 and after > 0.3 and after > 100 * before


def test_lora_trains_a_small_fraction_and_the_adapter_is_small(smollm, mascot_adapter):
    assert mascot_adapter.total == smollm.info.parameters
    assert 0 < mascot_adapter.trainable / mascot_adapter.total < 0.01  # r=8 on q and v: 460,800 of 135 M (0.34 %)
    assert mascot_adapter.size_bytes == 4 * mascot_adapter.trainable < 2**21
    assert mascot_adapter.model_bytes > 200 * mascot_adapter.size_bytes


def test_adapter_off_gives_exactly_the_base_models_logits(smollm, mascot_adapter):
    text = "The capital of France is"
    base = _logits(smollm.model, smollm.tokenizer, text)
    adapted = adapting.with_adapter(smollm, mascot_adapter)
    with adapted.model.disable_adapter():
        assert torch.equal(_logits(adapted.model, smollm.tokenizer, text), base)
    assert not torch.allclose(_logits(adapted.model, smollm.tokenizer, text), base)
    assert not any("lora" in name for name, _ in smollm.model.named_modules())  # PEFT never wrapped the shared one
    assert not any(p.requires_grad is False for p in smollm.model.parameters())


def test_the_frozen_view_shares_weights_instead_of_copying_them(smollm):
    view = adapting.frozen_view(smollm)
    shared = {p.data_ptr() for p in smollm.model.parameters()}
    assert {p.data_ptr() for p in view.parameters()} == shared
    assert not any(p.requires_grad for p in view.parameters())


def test_the_downloaded_adapter_loads_back_with_peft(smollm, mascot_adapter, tmp_path):
    archive = zipfile.ZipFile(__import__("io").BytesIO(adapting.adapter_zip(smollm, mascot_adapter)))
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(archive.namelist())
    archive.extractall(tmp_path)
    reloaded = PeftModel.from_pretrained(adapting.frozen_view(smollm), tmp_path)
    expected = adapting.with_adapter(smollm, mascot_adapter).model
    text = MASCOT["prompts"][0]
    torch.testing.assert_close(_logits(reloaded, smollm.tokenizer, text), _logits(expected, smollm.tokenizer, text))


def test_compare_reads_a_prompt_before_and_after(smollm, mascot_adapter):
    adapted = adapting.with_adapter(smollm, mascot_adapter)
    comparison = adapting.compare(smollm, adapted, MASCOT["prompts"][0])
    assert " Juno" in comparison.labels
    juno = comparison.labels.index(" Juno")
    assert comparison.after[juno] > 10 * comparison.before[juno]
    assert "Juno" in comparison.continuation_after and "Juno" not in comparison.continuation_before


def test_a_korean_phrase_taught_with_lora_comes_back_as_characters(smollm):
    korean = adapting.presets()["lora"]["korean"]
    adapter = adapting.train_lora(smollm, "\n".join(korean["examples"]), adapting.LoraSettings(steps=12))
    adapted = adapting.with_adapter(smollm, adapter)
    comparison = adapting.compare(smollm, adapted, korean["prompts"][0], steps=8)
    assert "안녕" in comparison.continuation_after and "\ufffd" not in comparison.continuation_after


@pytest.mark.parametrize("text, kind", [
    ("", "no_examples"), (" \n\n ", "no_examples"),
    ("\n".join(["An example."] * 17), "too_many_examples"),
    ("가" * 20_000, "example_too_long"), ("word " * 80, "example_too_long"),
])
def test_bad_examples_are_refused_with_a_reason(smollm, text, kind):
    with pytest.raises(jobs.TrainingError) as refused:
        adapting.check_examples(smollm.tokenizer, text)
    assert refused.value.kind == kind


@pytest.mark.parametrize("settings, kind", [
    (adapting.LoraSettings(rank=0), "bad_rank"), (adapting.LoraSettings(steps=10_000), "bad_steps"),
    (adapting.LoraSettings(steps=0), "bad_steps"), (adapting.LoraSettings(learning_rate=5.0), "bad_learning_rate"),
])
def test_absurd_settings_are_refused(smollm, settings, kind):
    with pytest.raises(jobs.TrainingError) as refused:
        adapting.train_lora(smollm, MASCOT["examples"][0], settings)
    assert refused.value.kind == kind


def test_a_training_too_long_for_a_shared_queue_is_refused_before_it_starts(smollm):
    longest = "\n".join([" ".join(["word"] * 64)] * adapting.MAX_EXAMPLES)  # 16 examples of 64 tokens
    assert len(adapting.check_lora(smollm.tokenizer, longest, adapting.LoraSettings(steps=15))) == 16
    with pytest.raises(jobs.TrainingError) as refused:
        adapting.check_lora(smollm.tokenizer, longest, adapting.LoraSettings(steps=200))
    assert refused.value.kind == "too_much_training" and "200 × 1,024" in refused.value.detail


def test_micro_batches_stay_within_their_token_budget():
    examples = [[1] * n for n in (5, 60, 3, 64, 20, 20, 20, 20, 20, 20, 20, 20)]
    seen = 0
    for input_ids, mask, labels in adapting.micro_batches(examples, pad_id=0, token_budget=128):
        assert input_ids.numel() <= 128 or input_ids.shape[0] == 1
        assert torch.equal(labels == -100, mask == 0)
        seen += int(mask.sum())
    assert seen == sum(map(len, examples))


# ---------------------------------------------------------------- chat template and DPO

# ---------------------------------------------------------------- distillation

def test_the_distillation_loss_is_the_kl_divergence_times_t_squared():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4), torch.randn(5, 4) * 3
    for temperature in distill.TEMPERATURES:
        p = torch.softmax(teacher / temperature, -1)  # (5, 4)
        q = torch.softmax(student / temperature, -1)
        by_hand = temperature ** 2 * (p * (p.log() - q.log())).sum(-1).mean()
        assert torch.allclose(distill.distillation_loss(student, teacher, temperature), by_hand, atol=1e-6)
    assert float(distill.distillation_loss(teacher, teacher, 4)) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def korean_teacher(gemma):
    return distill.teacher(gemma, "ko")


def test_the_teachers_softened_distribution_sums_to_one_and_flattens_as_t_grows(korean_teacher):
    assert korean_teacher.accuracy >= 0.8  # Gemma's layer-6 vectors, 32 Korean sentences a topic
    assert 1e8 < korean_teacher.parameters < 268e6  # the embedding and six of its 18 layers
    entropies = []
    for temperature in distill.TEMPERATURES:
        p = distill.softened(korean_teacher.logits, temperature)  # (192, 4)
        assert np.allclose(p.sum(-1), 1, atol=1e-6)
        entropies.append(float(-(p * np.log(p)).sum(-1).mean()))
    assert entropies == sorted(entropies) and entropies[0] < 0.3 and 1.0 < entropies[-1] < np.log(4)


def test_both_students_learn(korean_teacher):
    topics = transfer.load_topics()
    features = distill.grams(topics.texts["ko"])  # (192, 4096)
    chosen = korean_teacher.pool
    _, hard = distill.train_student(features[chosen], topics.labels[chosen], None, 1)
    _, soft = distill.train_student(features[chosen], topics.labels[chosen], korean_teacher.logits[chosen], 4)
    assert hard[-1] < 0.1 * hard[0] and soft[-1] < 0.1 * soft[0]  # the curves: the transfer page's AppTest


# ---------------------------------------------------------------- QLoRA

def test_qlora_trains_on_the_int4_copy_and_its_step_holds_what_the_table_says(smollm):
    settings = adapting.LoraSettings(rank=8, steps=3)
    found = qlora.compare(smollm, "\n".join(MASCOT["examples"]), settings, "int4_group")
    assert found.lora_losses[-1] < found.lora_losses[0] and found.qlora_losses[-1] < found.qlora_losses[0]
    assert found.qlora_losses[0] != found.lora_losses[0]  # the int4 copy is another model
    full, lora, q = (found.memory[m] for m in qlora.METHODS)
    weights = sum(p.numel() for p in smollm.model.parameters())
    assert lora.frozen == 4 * weights  # float32, each tied weight once
    copy = quantize.quantized(smollm, quantize.Scheme("int4_group"))
    matrices = quantize.block_matrices(copy.loaded.model, copy.loaded.parts.blocks)
    groups = found.quantized_matrix_parameters // 32
    assert sum(m.weight.scale.numel() for _, m in matrices) == groups
    per_group = sum(m.weight.scale.element_size() + m.weight.zero_point.element_size() for _, m in matrices[:1])
    assert found.quantized_matrix_bytes == found.quantized_matrix_parameters + groups * per_group  # an int8 per code
    assert q.frozen == found.quantized_matrix_bytes + 4 * (weights - found.quantized_matrix_parameters)
    assert lora.trainable == q.trainable == lora.gradients == 4 * sum(  # the adapter's A and B, float32
        m.lora_A["default"].weight.numel() + m.lora_B["default"].weight.numel()
        for m in adapting.lora_model(smollm, adapting.lora_config(8)).modules() if hasattr(m, "lora_A"))
    assert lora.optimizer == 2 * lora.trainable and full.optimizer == 2 * full.gradients == 2 * full.trainable
    assert 0 < lora.activations == q.activations < full.activations  # nothing of the int4 weights is saved
    assert q.total < lora.total < full.total


def test_the_frozen_int4_linear_passes_the_same_gradient_as_torchaos_own():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32)
    quantize._torchao([torch.nn.Sequential(layer)], quantize.Scheme("int4_group"))
    x = torch.randn(3, 64, requires_grad=True)
    torch.nn.functional.linear(x, layer.weight, layer.bias).square().sum().backward()
    expected, x.grad = x.grad.clone(), None
    adapting._DequantizeInBackward.forward_of(layer)(x).square().sum().backward()
    assert torch.allclose(x.grad, expected, atol=1e-5)


def test_the_chat_template_ids_are_the_tokenizers_own(smollm):
    request = "What is the capital of France? 한국어도 섞어서 😀"
    view = adapting.template_view(smollm, request)
    expected = smollm.tokenizer.apply_chat_template([{"role": "user", "content": request}], add_generation_prompt=True,
                                                    tokenize=True)
    assert view.ids == list(expected["input_ids"])
    assert [token.id for token in view.tokens.tokens] == view.ids  # the chips are the ids the model gets
    assert [token.piece for token in view.tokens.tokens if token.special][:2] == ["<|im_start|>", "<|im_end|>"]
    assert "한국어도" in view.text and "😀" in view.text


def test_the_templated_request_gets_an_answer_the_raw_one_does_not(smollm):
    request = "What is the capital of France?"
    templated = adapting.answer(smollm, adapting.template_view(smollm, request).ids, 16)
    assert "Paris" in templated and "<|im_" not in templated
    raw = adapting.answer(smollm, smollm.tokenizer(request)["input_ids"], 8, end_of_turn=False)
    assert raw.startswith("<|im_end|>")  # measured: raw, the model closes the turn and writes the template itself


def test_sequence_log_probs_match_the_models_own_softmax_on_unpadded_text(smollm):
    prompt = smollm.tokenizer("Bees make")["input_ids"]
    short, long = smollm.tokenizer(" honey.")["input_ids"], smollm.tokenizer(" honey and wax in the hive.")["input_ids"]
    with torch.inference_mode():
        batched = adapting.sequence_log_probs(smollm.model, [(prompt, short), (prompt, long)])
        for index, response in enumerate((short, long)):
            ids = torch.tensor([prompt + response])
            log_probs = torch.log_softmax(smollm.model(ids).logits[0, :-1].float(), dim=-1)  # (seq-1, vocab)
            expected = log_probs[len(prompt) - 1:].gather(-1, ids[0, len(prompt):, None]).sum()
            torch.testing.assert_close(batched[index], expected, atol=2e-3, rtol=1e-4)


def test_dpo_grows_the_margin_on_the_training_pair_and_keeps_the_shared_model(smollm):
    fingerprint = weights_fingerprint(smollm.model)
    pairs = adapting.presets()["dpo"]["pirate"]["pairs"][:2]
    pairs = [alignment.PreferencePair(**pair) for pair in pairs]
    before = alignment.log_prob_margins(smollm, pairs)
    adapter = alignment.train_dpo(smollm, pairs, alignment.DpoSettings(steps=4))
    after = alignment.log_prob_margins(adapting.with_adapter(smollm, adapter), pairs)
    assert (after > before + 5).all(), (before, after)
    assert adapter.losses[-1] < adapter.losses[0] and abs(adapter.losses[0] - np.log(2)) < 1e-3  # starts at the reference
    assert weights_fingerprint(smollm.model) == fingerprint


def test_dpo_loss_is_the_papers_formula():
    loss, margin = alignment.dpo_loss(torch.tensor(-1.0), torch.tensor(-3.0), torch.tensor(-2.0), torch.tensor(-2.0), 0.5)
    assert float(margin) == pytest.approx(0.5 * ((-1 + 2) - (-3 + 2)))
    assert float(loss) == pytest.approx(-np.log(1 / (1 + np.exp(-1.0))))


@pytest.mark.parametrize("pairs, kind", [
    ([], "no_pairs"), ([alignment.PreferencePair("", "", "")], "no_pairs"),
    ([alignment.PreferencePair("Q?", "yes", "")], "incomplete_pair"),
    ([alignment.PreferencePair("Q?", "same", "same")], "same_answers"),
    ([alignment.PreferencePair("Q?", "a", "b")] * 9, "too_many_pairs"),
    ([alignment.PreferencePair("Q?", "a" * 20_000, "b")], "example_too_long"),
])
def test_bad_preference_pairs_are_refused(pairs, kind):
    with pytest.raises(jobs.TrainingError) as refused:
        alignment.check_pairs(pairs)
    assert refused.value.kind == kind


# ---------------------------------------------------------------- the queue

def _slow_work(release: threading.Event, steps: int = 3):
    def work(job):
        for step in range(1, steps + 1):
            release.wait(10)
            job.report(step, 1.0 / step)
        return "trained"
    return work


def _wait_for(condition, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_one_training_at_a_time_and_the_others_see_their_place():
    queue, release = jobs.JobQueue(), threading.Event()
    first = queue.submit("lora", 3, _slow_work(release))
    _wait_for(lambda: first.status == "running")
    second = queue.submit("dpo", 3, _slow_work(release))
    third = queue.submit("encoder", 3, _slow_work(release))
    assert (second.status, queue.ahead(second), queue.ahead(third), queue.busy()) == ("queued", 1, 2, 3)
    release.set()
    _wait_for(lambda: third.finished)
    assert [job.status for job in (first, second, third)] == ["done"] * 3
    assert first.result == "trained" and first.losses == [1.0, 0.5, 1 / 3] and queue.busy() == 0


def test_cancel_stops_a_running_job_and_skips_a_queued_one():
    queue, release = jobs.JobQueue(), threading.Event()
    running = queue.submit("lora", 3, _slow_work(release))
    waiting = queue.submit("lora", 3, _slow_work(release))
    _wait_for(lambda: running.status == "running")
    running.cancel()
    waiting.cancel()
    release.set()
    _wait_for(lambda: waiting.finished)
    assert (running.status, waiting.status, waiting.step) == ("cancelled", "cancelled", 0)


def test_an_abandoned_job_is_cancelled_and_a_failure_is_a_message(monkeypatch):
    queue, release = jobs.JobQueue(), threading.Event()
    release.set()
    monkeypatch.setattr(jobs, "ABANDONED_SECONDS", 0.0)
    abandoned = queue.submit("lora", 3, _slow_work(release))
    _wait_for(lambda: abandoned.finished)
    assert abandoned.status == "cancelled"
    monkeypatch.setattr(jobs, "ABANDONED_SECONDS", 90.0)

    def refuse(job):
        raise jobs.TrainingError("no_examples")

    def out_of_memory(job):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    failed = [queue.submit("lora", 1, refuse), queue.submit("lora", 1, out_of_memory)]
    _wait_for(lambda: all(job.finished for job in failed))
    assert [(job.status, job.error) for job in failed] == [("failed", "no_examples"), ("failed", "out_of_memory")]


# ---------------------------------------------------------------- what an API call carries

def test_an_api_calls_usage_is_counted_by_the_models_own_tokenizer(smollm):
    messages = [{"role": "user", "content": "대한민국의 수도는 어디인가요? 한 문장으로 답해 주세요."}]
    call = api.chat_completion(smollm, messages, temperature=0.0, max_tokens=24)
    templated = smollm.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    usage = call.response["usage"]
    assert usage["prompt_tokens"] == len(templated["input_ids"] if hasattr(templated, "keys") else templated)
    assert usage["completion_tokens"] == len(call.completion_ids) <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    content = call.response["choices"][0]["message"]["content"]
    stop = adapting.answer_stop_ids(smollm)
    assert content == smollm.tokenizer.decode([i for i in call.completion_ids if i not in stop],
                                              skip_special_tokens=True).strip()
    greedy = smollm.model.generate(torch.tensor([call.prompt_ids]), max_new_tokens=len(call.completion_ids),
                                   do_sample=False)[0, len(call.prompt_ids):].tolist()
    assert greedy == call.completion_ids  # temperature 0 is the model's own greedy answer
    assert call.request == {"model": smollm.info.key, "messages": messages, "temperature": 0.0, "max_tokens": 24}
    assert api.cost(1_000_000, 500_000, 0.15, 0.6) == pytest.approx(0.45)
    for bad in ("abc", "", "-1", "nan", "1e9"):
        assert api.parse_price(bad) is None
    assert api.parse_price("$2.50") == 2.5 and api.parse_price("1,25") == 1.25
    for temperature, tokens, text in ((1_000.0, 8, "hi"), (float("nan"), 8, "hi"), (0.5, 0, "hi"), (0.5, 8, " "),
                                      (0.5, 8, "가" * 5_000), (0.5, 8, "똠방각하 " * 700)):  # the last: 3,500 characters, ~8,000 tokens
        with pytest.raises(activations.CaptureError):
            api.chat_completion(smollm, [{"role": "user", "content": text}], temperature, tokens)
