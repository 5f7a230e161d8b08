"""Quantization on the real bundled models: the rounding, the bytes, the shared copies, and what the next token loses."""

import numpy as np
import pytest
import torch

from explorer import activations, embeddings, models, quantize
from explorer.models import weights_fingerprint

TEXT = "The capital of France is Paris. 대한민국의 수도는 서울이다. The cat sat on the mat and looked at the rain."


def _weight(loaded) -> torch.Tensor:
    return quantize.matrix_weight(quantize.block_matrices(loaded.model, loaded.parts.blocks)[0][1])  # (out, in)


@pytest.mark.parametrize("key", [models.SMOLLM2, models.MINILM])
def test_int8_per_channel_is_within_half_a_step_of_the_original(request, key):
    loaded = request.getfixturevalue("smollm" if key == models.SMOLLM2 else "minilm")
    weight = _weight(loaded)
    stored = quantize.quantize_weight(weight, quantize.Scheme("int8_channel"))
    half_step = stored.scales.float() / 2  # (out, 1)
    assert ((stored.dequantize() - weight).abs() <= half_step * (1 + 1e-3) + 1e-6).all()
    assert stored.codes.dtype == torch.int8


@pytest.mark.parametrize("scheme, bits, scales_per_row", [
    (quantize.Scheme("bf16"), 16, 0), (quantize.Scheme("int8_tensor"), 8, None), (quantize.Scheme("int8_channel"), 8, 1),
    (quantize.Scheme("int4_group", 32), 4, 576 // 32), (quantize.Scheme("int4_group", 64, False), 4, 576 // 64),
])
def test_measured_bytes_are_parameters_times_bits_plus_scales(smollm, scheme, bits, scales_per_row):
    weight = _weight(smollm)  # (576, 576)
    stored = quantize.quantize_weight(weight, scheme)
    scales = 1 if scales_per_row is None else scales_per_row * weight.shape[0]
    zeros = 0 if scheme.symmetric or scheme.name != "int4_group" else scales  # one byte each
    expected = weight.numel() * bits // 8 + (2 * scales if scheme.bits < 16 else 0) + zeros
    assert stored.nbytes == expected


@pytest.mark.parametrize("name", ["int8_channel", "int8_tensor"])
def test_torchao_int8_copy_is_within_its_half_step_agrees_with_rtn_and_counts_its_bytes(smollm, name):
    copy = quantize.quantized(smollm, quantize.Scheme(name))
    assert copy.library == "torchao"
    original = _weight(smollm)  # (576, 576)
    stored = quantize.block_matrices(copy.loaded.model, copy.loaded.model.model.layers)[0][1].weight  # torchao Int8Tensor
    assert stored.qdata.dtype == torch.int8
    half_step = stored.scale.float() / 2  # (576, 1) or (1, 1)
    assert ((stored.dequantize().float() - original).abs() <= half_step * (1 + 1e-3) + 1e-7).all()
    ours = quantize.quantize_weight(original, quantize.Scheme(name))  # our round-to-nearest: steps of max / 127
    assert ((ours.dequantize() - stored.dequantize().float()).abs() <= ours.scales.float() * 1.01).all()
    rows = sum(module.weight.shape[0] for _, module in quantize.block_matrices(smollm.model, smollm.parts.blocks))
    per_row = 4 + 1 if name == "int8_channel" else 0  # float32 scale and int8 zero point per row
    assert copy.matrix_bytes == copy.matrix_parameters + (per_row * rows if per_row else 5 * 210)


def test_int4_round_trips_its_own_grid(minilm):
    weight = _weight(minilm)
    for symmetric in (True, False):
        scheme = quantize.Scheme("int4_group", 32, symmetric)
        once = quantize.quantize_weight(weight, scheme).dequantize()
        assert len(np.unique(once[0, :32].numpy())) <= 16  # 16 steps per group
        levels = quantize.grid_levels(weight, scheme)
        assert len(levels) == 16 and np.all(np.diff(levels) > 0)


def test_copies_share_everything_but_the_matrices_and_leave_the_model_unchanged(smollm):
    fingerprint = weights_fingerprint(smollm.model)
    shared = {p.data_ptr() for p in smollm.model.parameters()}
    quantize._built.pop((smollm.fingerprint, "int8_channel"), None)  # built here from this fixture's model (the app
    # loads one model per process; other tests may have built this scheme from another instance of the same weights)
    copy = quantize.quantized(smollm, quantize.Scheme("int8_channel"))
    assert copy is quantize.quantized(smollm, quantize.Scheme("int8_channel"))  # built once per process and scheme
    plain = [p for p in copy.loaded.model.parameters() if type(p.data) is torch.Tensor]  # not torchao's int8 weights
    assert len(plain) == len(list(smollm.model.parameters())) - 210 and {p.data_ptr() for p in plain} <= shared
    assert 0.99 < copy.matrix_bytes / copy.matrix_parameters < 1.01  # int8 plus one fp16 scale per row
    assert weights_fingerprint(smollm.model) == fingerprint
    assert not any(isinstance(m, quantize.QuantizedLinear) for m in smollm.model.modules())


def test_kl_is_zero_for_fp32_and_grows_from_bf16_to_int8_to_int4(smollm):
    names = ("fp32", "bf16", "int8_channel", "int4_group")
    copies = [quantize.quantized(smollm, quantize.Scheme(name)).loaded for name in names]
    found = dict(zip(names, quantize.compare(smollm, copies, TEXT)))
    assert found["fp32"].kl == 0.0 and found["fp32"].top1 == 1.0
    assert found["bf16"].kl < found["int8_channel"].kl < found["int4_group"].kl
    assert found["int4_group"].top1 < 1.0


def test_perplexity_in_chunks_matches_the_models_own_loss(smollm):
    text = " ".join([TEXT] * 4)
    ids = torch.as_tensor(activations.encode(smollm, text)[0])
    assert len(ids) > quantize.CHUNK  # more than one chunk of positions
    with torch.inference_mode():
        loss = smollm.model(ids[None], labels=ids[None]).loss  # transformers' own mean cross-entropy
    assert quantize.perplexity(smollm, text) == pytest.approx(float(torch.exp(loss)), rel=1e-4)


def test_minilm_sentence_vectors_survive_int8_per_channel(minilm):
    copy = quantize.quantized(minilm, quantize.Scheme("int8_channel")).loaded
    reference, other = embeddings.sentence_embeddings(minilm, [TEXT])[0], embeddings.sentence_embeddings(copy, [TEXT])[0]
    assert float(reference @ other) > 0.99


def test_the_gguf_file_declares_q4_1_blocks_of_32():
    rows = {row["type"]: row for row in quantize.gguf_types()}
    assert rows["Q4_1"]["tensors"] == 210 and rows["Q4_1"]["block_size"] == 32
    assert rows["Q4_1"]["bits_per_weight"] == 5.0  # 32 codes of 4 bits + an fp16 scale and minimum per block
