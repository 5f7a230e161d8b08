"""Layer 1: the engine on the real bundled models, against the models' own reference computations."""

import dataclasses
import json
import threading

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM

from explorer import activations, models
from explorer.activations import CaptureCache, CaptureError, capture, run_capture
from explorer.capture_attention import HEAD_STATS

KO_EN = "고양이가 창가에 앉아 있다. The cat sits by the window."


def _eager_reference(loaded, ids):
    """The same weights run by transformers' own eager attention, which returns every softmax.

    Each block's output is read with forward hooks on this private copy (transformers' own hidden_states end with
    the final norm already applied), and `block_outputs` is added to the returned output.
    """
    folder = models.minilm_folder() if loaded.info.family == "encoder" else models.smollm2_converted_folder()
    auto = AutoModel if loaded.info.family == "encoder" else AutoModelForCausalLM
    reference = auto.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    base = reference.base_model
    blocks = base.layers if hasattr(base, "layers") else base.encoder.layer
    block_outputs = []
    for block in blocks:
        block.register_forward_hook(lambda module, args, out: block_outputs.append((out[0] if isinstance(out, tuple) else out)[0].clone()))
    with torch.inference_mode():
        output = reference(torch.as_tensor(ids)[None], output_attentions=True, output_hidden_states=True)
    output.block_outputs = [b.numpy() for b in block_outputs]
    return output


@pytest.mark.parametrize("which", ["smollm", "minilm"])
def test_patterns_match_the_models_own_softmax(which, request):
    loaded = request.getfixturevalue(which)
    layers = loaded.info.layers
    result = run_capture(loaded, KO_EN, ["blocks.*.attn.pattern", "blocks.*.attn.head_stats"])
    reference = _eager_reference(loaded, result.token_ids)
    for layer in range(layers):
        pattern = result[f"blocks.{layer}.attn.pattern"].astype(np.float32)  # (heads, seq, seq)
        assert pattern.shape == (loaded.info.query_heads, len(result.token_ids), len(result.token_ids))
        np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=5e-3)  # rows sum to 1 (fp16 storage)
        np.testing.assert_allclose(pattern, reference.attentions[layer][0].numpy(), atol=2e-3)
        if loaded.info.family == "decoder":
            assert np.all(np.triu(pattern, k=1) == 0)  # causal: nothing above the diagonal
        else:
            assert np.triu(pattern, k=1).sum() > 0.1  # bidirectional: the future is visible


@pytest.mark.parametrize("which", ["smollm", "minilm"])
def test_head_stats_agree_with_the_full_pattern(which, request):
    loaded = request.getfixturevalue(which)
    result = run_capture(loaded, KO_EN, ["blocks.*.attn.head_stats"])
    reference = _eager_reference(loaded, result.token_ids)
    for layer in range(loaded.info.layers):
        full = reference.attentions[layer][0].numpy().astype(np.float64)  # (heads, seq, seq)
        seq = full.shape[-1]
        expected = np.stack([
            -(full * np.log(np.where(full > 0, full, 1))).sum(-1).mean(-1),
            full[:, np.arange(1, seq), np.arange(seq - 1)].mean(-1),
            full[:, :, 0].mean(-1),
            full[:, np.arange(seq), np.arange(seq)].mean(-1),
            (full[:, np.arange(seq), np.arange(seq)] if loaded.info.family == "decoder" else full[:, :, -1]).mean(-1),
        ], axis=-1)  # (heads, stats)
        np.testing.assert_allclose(result[f"blocks.{layer}.attn.head_stats"], expected, atol=2e-4, err_msg=f"layer {layer}")
    assert activations.head_stats_table(result).shape == (loaded.info.layers, loaded.info.query_heads, len(HEAD_STATS))


def test_captured_logits_and_hidden_states_equal_the_models_own_forward(smollm):
    result = run_capture(smollm, KO_EN, ["next_logits", "token_log_probs", "blocks.*.resid_post", "blocks.0.resid_pre",
                                         "embed", "final"])
    reference = _eager_reference(smollm, result.token_ids)
    np.testing.assert_allclose(result["next_logits"], reference.logits[0, -1].numpy(), atol=2e-3, rtol=1e-3)
    log_probs = torch.log_softmax(reference.logits[0, :-1].double(), -1)  # (seq - 1, vocab): the unchunked reference
    expected = log_probs.gather(-1, torch.as_tensor(result.token_ids[1:])[:, None])[:, 0].numpy()
    np.testing.assert_allclose(result["token_log_probs"], expected, atol=2e-3)
    np.testing.assert_allclose(result["blocks.0.resid_pre"], reference.hidden_states[0][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(result["embed"], reference.hidden_states[0][0].numpy(), atol=1e-5)
    for layer in range(smollm.info.layers):  # every block's own output, the last one before the final norm
        np.testing.assert_allclose(result[f"blocks.{layer}.resid_post"], reference.block_outputs[layer], atol=5e-3, rtol=1e-3)
    with torch.inference_mode():
        unembedded = smollm.model.lm_head(torch.as_tensor(result["final"])).numpy()  # (seq, vocab)
    np.testing.assert_allclose(unembedded, reference.logits[0].numpy(), atol=2e-3, rtol=1e-3)  # final feeds the head


def test_encoder_hidden_states_equal_the_models_own_blocks(minilm):
    result = run_capture(minilm, KO_EN, ["blocks.*.resid_post", "final"])
    reference = _eager_reference(minilm, result.token_ids)
    for layer in range(minilm.info.layers):
        np.testing.assert_allclose(result[f"blocks.{layer}.resid_post"], reference.block_outputs[layer], atol=1e-4)
    np.testing.assert_allclose(result["final"], reference.last_hidden_state[0].numpy(), atol=1e-4)


def test_smollm2_says_paris(smollm):
    result = run_capture(smollm, "The capital of France is", ["next_logits"])
    probs = torch.softmax(torch.as_tensor(result["next_logits"]), -1)  # (vocab,)
    assert abs(float(probs.sum()) - 1.0) < 1e-4
    assert smollm.tokenizer.decode([int(probs.argmax())]) == " Paris"


def test_encoder_has_learned_positions_and_offsets(minilm):
    result = run_capture(minilm, "bank of the river", ["pos_embed", "embed"])
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    assert result["pos_embed"].shape == (len(result.token_ids), minilm.info.hidden_size)
    spans = ["bank of the river"[s:e] for s, e in result.offsets[1:-1]]
    assert spans == ["bank", "of", "the", "river"]


def test_rotary_model_has_no_position_vectors(smollm):
    with pytest.raises(CaptureError) as refused:
        run_capture(smollm, "hello", ["pos_embed"])
    assert refused.value.kind == "not_available"


def test_long_input_is_truncated_and_says_how_much(minilm):
    text = "토큰 " * 800
    result = run_capture(minilm, text, ["blocks.0.attn.head_stats"])
    assert len(result.token_ids) == minilm.info.max_length
    assert result.dropped_tokens > 0 and result.tokens[-1] == "[SEP]"
    assert result.text == text  # what the user typed is kept whole


@pytest.mark.parametrize("text", ["🙂👍🏽 emoji", "zero\u200bwidth\u200d joiner", "tab\tand\x07bell", "혼합 mixed 混合 текст"])
def test_unusual_text_runs(smollm, text):
    result = run_capture(smollm, text, ["blocks.0.attn.head_stats", "next_logits", "token_log_probs"])
    assert np.isfinite(result["next_logits"]).all() and np.isfinite(result["token_log_probs"]).all()


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_refused_clearly(smollm, text):
    with pytest.raises(CaptureError) as refused:
        run_capture(smollm, text, ["next_logits"])
    assert refused.value.kind == "empty_text"


def test_unknown_names_are_refused(smollm):
    with pytest.raises(CaptureError):
        run_capture(smollm, "hi", ["blocks.99.resid_post"])
    with pytest.raises(CaptureError):
        run_capture(smollm, "hi", ["everything"])


def test_cache_hits_memory_then_disk_and_recomputes_a_corrupt_file(minilm, tmp_path):
    names = ["blocks.*.resid_post", "blocks.2.attn.pattern", "blocks.*.attn.head_stats"]
    cache = CaptureCache(tmp_path)
    first = capture(minilm, KO_EN, names, cache=cache)
    assert first.from_cache == ""
    again = capture(minilm, KO_EN, names, cache=cache)
    assert again.from_cache == "memory"
    fresh = CaptureCache(tmp_path)  # a new process: only the disk remains
    from_disk = capture(minilm, KO_EN, names, cache=fresh)
    assert from_disk.from_cache == "disk"
    assert from_disk.tokens == first.tokens
    for name in first.tensors:
        np.testing.assert_array_equal(from_disk[name], first[name])
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    data = bytearray(files[0].read_bytes())
    data[-100] ^= 0xFF  # one flipped byte inside the tensor data
    files[0].write_bytes(bytes(data))
    recomputed = capture(minilm, KO_EN, names, cache=CaptureCache(tmp_path))
    assert recomputed.from_cache == ""
    np.testing.assert_allclose(recomputed["blocks.2.attn.pattern"], first["blocks.2.attn.pattern"])
    files[0].write_bytes(files[0].read_bytes()[:1000])  # truncated
    assert capture(minilm, KO_EN, names, cache=CaptureCache(tmp_path)).from_cache == ""


def test_cache_key_changes_with_text_and_options(minilm, tmp_path):
    cache = CaptureCache(tmp_path)
    a = CaptureCache.key(minilm, "a", ["embed"], None, 0)
    assert a != CaptureCache.key(minilm, "b", ["embed"], None, 0)
    assert a != CaptureCache.key(minilm, "a", ["final"], None, 0)
    assert a != CaptureCache.key(minilm, "a", ["embed"], 16, 0)
    assert cache.get(a) is None
    retrained = dataclasses.replace(minilm, fingerprint="0" * 16)  # other weights under the same name
    assert a != CaptureCache.key(retrained, "a", ["embed"], None, 0)


def test_memory_cache_counts_everything_it_holds_and_stays_within_its_bound(minilm, tmp_path):
    one = capture(minilm, "토큰 " * 100, ["embed"], cache=CaptureCache(tmp_path / "probe"))
    arrays = sum(a.nbytes for a in one.tensors.values()) + one.token_ids.nbytes + one.offsets.nbytes
    assert one.nbytes > arrays  # the text and the decoded tokens count too
    cache = CaptureCache(tmp_path, memory_bytes=3 * one.nbytes)
    for i in range(8):
        capture(minilm, f"{i} " + "토큰 " * 100, ["embed"], cache=cache)
    held = list(cache._memory.values())
    assert 1 <= len(held) <= 3 and sum(c.nbytes for c in held) <= cache.memory_bytes
    assert held[-1].text.startswith("7 ")  # the newest stays


def test_disk_cache_stays_within_its_bound(minilm, tmp_path):
    cache = CaptureCache(tmp_path, disk_bytes=400_000)
    for i in range(6):
        capture(minilm, f"sentence number {i} " * 10, ["blocks.*.resid_post"], cache=cache)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.safetensors")) <= 400_000


def test_a_capture_too_large_for_the_disk_stays_in_memory(smollm, tmp_path, monkeypatch):
    monkeypatch.setattr(activations, "DISK_ENTRY_BYTES", 1_000)
    cache = CaptureCache(tmp_path)
    first = capture(smollm, "A capture larger than a thousand bytes.", ["blocks.0.attn.pattern"], cache=cache)
    assert not list(tmp_path.glob("*.safetensors"))
    assert capture(smollm, first.text, ["blocks.0.attn.pattern"], cache=cache).from_cache == "memory"


def test_concurrent_sessions_get_their_own_tensors(smollm):
    texts = ["The cat sat on the mat.", "고양이가 매트 위에 앉았다. 그리고 잠들었다."]
    expected = {t: run_capture(smollm, t, ["blocks.5.attn.pattern", "blocks.*.attn.head_stats"]) for t in texts}
    results, errors = {}, []

    def worker(text, slot):
        try:
            for _ in range(3):
                results[slot] = run_capture(smollm, text, ["blocks.5.attn.pattern", "blocks.*.attn.head_stats"])
        except Exception as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(t, i)) for i, t in enumerate(texts * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for slot, text in enumerate(texts * 2):
        np.testing.assert_array_equal(results[slot]["blocks.5.attn.pattern"], expected[text]["blocks.5.attn.pattern"])


def test_a_logit_lens_in_another_session_does_not_leak_into_a_capture(smollm):
    """The capture hooks the shared final norm; another thread's lens calls that norm at the same time."""
    from explorer import prediction

    text = "The capital of France is Paris, and the capital of Italy is Rome."
    expected = run_capture(smollm, text, ["blocks.29.resid_post", "final"])
    lens_states = np.zeros((smollm.info.layers, 3, smollm.info.hidden_size), dtype=np.float32)
    stop, errors = threading.Event(), []

    def lens_forever():
        while not stop.is_set():
            prediction.logit_lens(smollm, lens_states)

    lens = threading.Thread(target=lens_forever)
    lens.start()
    try:
        for _ in range(6):
            found = run_capture(smollm, text, ["blocks.29.resid_post", "final"])
            for name in ("blocks.29.resid_post", "final"):
                if found[name].shape != expected[name].shape or not np.allclose(found[name], expected[name], atol=1e-5):
                    errors.append(name)
    finally:
        stop.set()
        lens.join()
    assert errors == []


def test_plain_forward_is_untouched_outside_a_capture(smollm):
    ids = torch.tensor([[504, 3575, 282, 4649, 314]])
    with torch.inference_mode():
        logits = smollm.model(ids).logits[0, -1]
    assert smollm.tokenizer.decode([int(logits.argmax())]) == " Paris"


def test_description_of_the_bundled_models(smollm, minilm):
    assert (smollm.info.family, smollm.info.layers, smollm.info.query_heads, smollm.info.kv_heads) == ("decoder", 30, 9, 3)
    assert (smollm.info.hidden_size, smollm.info.vocab_size, smollm.info.parameters) == (576, 49152, 134_515_008)
    assert (minilm.info.family, minilm.info.layers, minilm.info.query_heads, minilm.info.hidden_size) == ("encoder", 6, 12, 384)
    assert minilm.info.vocab_size == 30522 and minilm.info.source == "package"
    assert smollm.info.source in ("cache", "package") and smollm.info.device == "cpu"
    assert models.smollm2_converted_folder().joinpath("model.safetensors").exists()
    assert models.load(models.SMOLLM2).info.source == "cache"  # later loads read the converted safetensors


def _write_config(folder, **overrides):
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000}
    config.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_remote_code_is_refused_before_any_weights(tmp_path):
    folder = _write_config(tmp_path / "custom", auto_map={"AutoModelForCausalLM": "modeling_custom.Custom"})
    with pytest.raises(models.ModelError) as refused:
        models.load(str(folder))  # the folder holds no weights: reaching them would fail differently
    assert refused.value.kind == "remote_code"


def test_oversized_model_is_refused_from_its_config(tmp_path):
    folder = _write_config(tmp_path / "big", hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                           num_attention_heads=64, num_key_value_heads=8, vocab_size=128256)
    with pytest.raises(models.ModelError) as refused:
        models.load(str(folder))
    assert refused.value.kind == "too_large" and "70" in refused.value.detail  # ~70,554M parameters


def test_small_model_without_safetensors_is_refused(tmp_path):
    folder = _write_config(tmp_path / "pickled")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(models.ModelError) as refused:
        models.load(str(folder))
    assert refused.value.kind == "no_safetensors"


def test_hub_ids_without_network_get_their_own_message():
    with pytest.raises(models.ModelError) as refused:
        models.load("gpt2")
    assert refused.value.kind == "offline"
    with pytest.raises(models.ModelError) as refused:
        models.load("not a valid id!")
    assert refused.value.kind in ("unknown_id", "offline")


def test_device_and_dtype_choice(monkeypatch):
    monkeypatch.delenv("EXPLORER_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if expected == "cpu" and torch.backends.mps.is_available():
        expected = "mps"
    assert models.pick_device().type == expected  # the best device there is, by default
    monkeypatch.setenv("EXPLORER_DEVICE", "cpu")
    assert models.pick_device().type == "cpu"  # the setting overrides it
    assert models.pick_dtype(torch.device("cpu")) == torch.float32  # CPUs compute bf16 slowly or not at all
    assert models.pick_dtype(torch.device("cpu"), "bfloat16") == torch.bfloat16
    monkeypatch.setenv("EXPLORER_DTYPE", "float16")
    assert models.pick_dtype(torch.device("cpu")) == torch.float16


@pytest.mark.parametrize("which", ["smollm", "minilm"])
def test_pooled_pattern_is_the_block_average_of_the_full_pattern(which, request):
    loaded = request.getfixturevalue(which)
    text = KO_EN * 3
    result = run_capture(loaded, text, ["blocks.1.attn.pattern", "blocks.1.attn.pooled"], pooled_size=8)
    full = result["blocks.1.attn.pattern"].astype(np.float64)  # (heads, seq, seq)
    seq = full.shape[-1]
    bins = np.arange(seq) * 8 // seq  # (seq,) the bin of each position
    expected = np.zeros((full.shape[0], 8, 8))
    for row_bin in range(8):
        for col_bin in range(8):
            expected[:, row_bin, col_bin] = full[:, bins == row_bin][:, :, bins == col_bin].mean(axis=(1, 2))
    np.testing.assert_allclose(result["blocks.1.attn.pooled"], expected, atol=1e-3)
    column_counts = np.bincount(bins, minlength=8)  # (8,) keys per column bin
    np.testing.assert_allclose((result["blocks.1.attn.pooled"] * column_counts).sum(-1), 1.0, atol=1e-3)  # rows keep mass 1


def test_two_models_loaded_at_once_are_both_whole():
    """Two sessions asking for two models at the same moment (transformers' loading is not thread-safe: measured, it
    left SmolLM2's lm_head on the meta device)."""
    import threading

    found = {}
    threads = [threading.Thread(target=lambda key=key: found.__setitem__(key, models.load(key, device="cpu")))
               for key in (models.SMOLLM2, models.MINILM)]
    [thread.start() for thread in threads]
    [thread.join(120) for thread in threads]
    assert set(found) == {models.SMOLLM2, models.MINILM}
    for loaded in found.values():
        assert not any(p.is_meta for p in loaded.model.parameters()) and loaded.info.source in ("cache", "package")


def test_a_damaged_converted_cache_is_converted_again(tmp_path, monkeypatch):
    import shutil

    from explorer import prediction

    converted = models.converted_folder(models.SMOLLM2)  # the suite's own, copied into this test's cache
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    shutil.copytree(converted, models.converted_folder(models.SMOLLM2))
    weights = models.converted_folder(models.SMOLLM2) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # cut short, as by a full disk
    loaded = models.load(models.SMOLLM2, device="cpu")
    assert loaded.info.source == "package" and weights.stat().st_size > 500_000_000  # converted again from the GGUF
    added, _ = prediction.generate(loaded, "The capital of France is", 2)
    assert loaded.tokenizer.decode(added).strip().startswith("Paris")
    # The conversion writes a tensor at a time (models.convert_gguf): every weight equals transformers' own reading of
    #   the GGUF, its query and key rows un-permuted as Llama needs
    gguf = models.GGUF_FILES[models.SMOLLM2]()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).state_dict()
    converted_weights = loaded.model.state_dict()
    assert set(converted_weights) == set(reference)
    assert all(torch.equal(converted_weights[name], reference[name]) for name in reference)
