"""Quantization on the real bundled models: the rounding, the bytes, the shared copies, and what the next token loses."""

import numpy as np
import pytest
import torch

from explorer import activations, embeddings, memory, models, quantize
from explorer.models import weights_fingerprint

TEXT = "The capital of France is Paris. 대한민국의 수도는 서울이다. The cat sat on the mat and looked at the rain."


def _weight(loaded) -> torch.Tensor:
    return quantize.matrix_weight(quantize.block_matrices(loaded.model, loaded.parts.blocks)[0][1])  # (out, in)


@pytest.mark.parametrize("name", ["int8_channel", "int8_tensor"])
def test_torchao_int8_copy_is_within_its_half_step_and_counts_its_bytes(smollm, name):
    copy = quantize.quantized(smollm, quantize.Scheme(name))
    assert copy.library == "torchao"
    original = _weight(smollm)  # (576, 576)
    stored = quantize.block_matrices(copy.loaded.model, copy.loaded.parts.blocks)[0][1].weight  # torchao Int8Tensor
    assert stored.qdata.dtype == torch.int8
    half_step = stored.scale.float() / 2  # (576, 1) or (1, 1)
    assert ((stored.dequantize().float() - original).abs() <= half_step * (1 + 1e-3) + 1e-7).all()
    rows = sum(module.weight.shape[0] for _, module in quantize.block_matrices(smollm.model, smollm.parts.blocks))
    scales = rows if name == "int8_channel" else 210  # one float32 scale per row, or per matrix (symmetric: no zeros)
    assert copy.matrix_bytes == copy.matrix_parameters + 4 * scales


@pytest.mark.parametrize("symmetric", [True, False])
def test_torchao_int4_copy_takes_16_levels_per_group_drawn_by_its_grid(minilm, symmetric):
    scheme = quantize.Scheme("int4_group", 32, symmetric)
    copy = quantize.quantized(minilm, scheme)
    assert copy.library == "torchao"
    name, module = quantize.block_matrices(copy.loaded.model, copy.loaded.parts.blocks)[0]
    weight = quantize.dequantized(module)  # (out, in): what the copy multiplies by
    original = _weight(minilm)
    levels = quantize.grid_levels(module, scheme)
    assert len(levels) == 16 and np.all(np.diff(levels) > 0)
    row, column = divmod(int(weight.abs().argmax()), weight.shape[1])
    group = weight[row, column // 32 * 32:(column // 32 + 1) * 32].numpy()  # the group the grid is drawn for
    assert np.abs(group[:, None] - levels[None]).min(1).max() < 1e-5  # every weight sits on the drawn grid
    step = float(levels[1] - levels[0])
    assert float((weight - original).abs().max()) < 1.01 * step * (16 / 15 if symmetric else 1)  # within its steps
    parameters, groups = copy.matrix_parameters, copy.matrix_parameters // 32
    assert copy.matrix_bytes == parameters + groups * (4 + 1)  # int8-held codes, float32 scale, int8 zero point
    assert copy.packed_bytes == parameters // 2 + 2 * groups * (1 if symmetric else 2)
    errors = np.array(quantize.one_at_a_time(minilm, [scheme], quantize.errors_of(minilm)))  # the heatmap's copy
    assert errors.shape == (1, len(quantize.block_matrices(minilm.model, minilm.parts.blocks)))
    assert errors[0, 0] == pytest.approx(float((weight - original).norm() / original.norm()), rel=1e-5)


def test_copies_share_everything_but_the_matrices_and_leave_the_model_unchanged(smollm):
    fingerprint = weights_fingerprint(smollm.model)
    shared = {p.data_ptr() for p in smollm.model.parameters()}
    memory.BUDGET.drop(quantize.copy_key(smollm, quantize.Scheme("int8_channel")))  # built here from this fixture's model (the app
    # loads one model per process; other tests may have built this scheme from another instance of the same weights)
    copy = quantize.quantized(smollm, quantize.Scheme("int8_channel"))
    assert copy is quantize.quantized(smollm, quantize.Scheme("int8_channel"))  # built once per process and scheme
    plain = [p for p in copy.loaded.model.parameters() if type(p.data) is torch.Tensor]  # not torchao's int8 weights
    assert len(plain) == len(list(smollm.model.parameters())) - 210 and {p.data_ptr() for p in plain} <= shared
    assert 0.99 < copy.matrix_bytes / copy.matrix_parameters < 1.01  # int8 plus one scale per row
    bf16 = quantize.quantized(smollm, quantize.Scheme("bf16"))
    assert bf16.matrix_bytes == 2 * bf16.matrix_parameters and bf16.library == "torch"
    assert weights_fingerprint(smollm.model) == fingerprint
    assert not any(isinstance(m, quantize.CastLinear) for m in smollm.model.modules())
    assert all(type(p.data) is torch.Tensor for p in smollm.model.parameters())


def test_a_dropped_copy_rebuilt_gives_the_same_numbers(minilm):
    scheme = quantize.Scheme("int8_tensor")
    first = quantize.behaviour(minilm, [scheme], TEXT, 64, TEXT, 64)
    memory.BUDGET.drop(quantize.copy_key(minilm, scheme))
    assert quantize.behaviour(minilm, [scheme], TEXT, 64, TEXT, 64) == first  # built again from the same weights


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
    assert len(ids) > smollm.parts.positions_per_chunk()  # more than one chunk of positions
    with torch.inference_mode():
        loss = smollm.model(ids[None], labels=ids[None]).loss  # transformers' own mean cross-entropy
    assert quantize.perplexity(smollm, text) == pytest.approx(float(torch.exp(loss)), rel=1e-4)


def test_minilm_sentence_vectors_survive_int8_per_channel(minilm):
    copy = quantize.quantized(minilm, quantize.Scheme("int8_channel")).loaded
    reference, other = embeddings.sentence_embeddings(minilm, [TEXT])[0], embeddings.sentence_embeddings(copy, [TEXT])[0]
    assert float(reference @ other) > 0.99


def test_the_gguf_files_declare_their_blocks():
    rows = {row["type"]: row for row in quantize.gguf_types("smollm2-135m")}
    assert rows["Q4_1"]["tensors"] == 210 and rows["Q4_1"]["block_size"] == 32
    assert rows["Q4_1"]["bits_per_weight"] == 5.0  # 32 codes of 4 bits + an fp16 scale and minimum per block
    gemma = {row["type"]: row["tensors"] for row in quantize.gguf_types("gemma3-270m")}
    assert gemma == {"F32": 109, "Q5_0": 81, "Q4_K": 27, "Q8_0": 10, "Q6_K": 9}  # Q4_K_M: a mix
    assert quantize.gguf_types("minilm-l6") == []  # true fp32


def test_the_gguf_header_reader_lists_what_the_gguf_package_reads():
    from gguf import GGUFReader

    path = models.GGUF_FILES["smollm2-135m"]()
    tensors = GGUFReader(str(path)).tensors
    assert quantize.gguf_tensors(path) == [(int(t.tensor_type), int(t.n_elements)) for t in tensors]
    rows = quantize.gguf_types("smollm2-135m")
    assert sum(row["bytes"] for row in rows) == sum(int(t.n_bytes) for t in tensors)


def test_int4_groups_fit_a_width_the_chosen_size_does_not_divide(tmp_path):
    """A hub model of width 40 (and 72 in its MLP): groups of 32 become groups of 8 there, and the copy still runs."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from explorer import models

    tokenizer = AutoTokenizer.from_pretrained(models.bundled_folder(models.SMOLLM2))
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=40, intermediate_size=72, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = models.load(str(tmp_path), device="cpu", dtype="float32")
    scheme = quantize.Scheme("int4_group", 32)
    copy = quantize.quantized(loaded, scheme)
    for _, module in quantize.block_matrices(copy.loaded.model, copy.loaded.parts.blocks):
        width = module.weight.shape[1]
        assert width // module.weight.scale.shape[1] == quantize.group_for(width, 32) == 8
        assert len(quantize.grid_levels(module, scheme)) == 16
    assert np.isfinite(activations.run_capture(copy.loaded, TEXT, ["next_logits"])["next_logits"]).all()


def test_on_gemma_whose_matrices_are_stored_in_bf16_the_fp32_and_bf16_copies_are_the_model(gemma):
    """Gemma's block matrices are stored in bf16 (models.narrow_block_matrices): its fp32 row is the model as stored
    and its bf16 copy shares the same matrices (nothing added, 2 bytes a weight), both giving the model's own
    next-token distribution; int8 still moves it."""
    fp32, bf16, int8 = (quantize.quantized(gemma, quantize.Scheme(name)) for name in ("fp32", "bf16", "int8_channel"))
    assert gemma.info.block_dtype == "bfloat16"
    for copy in (fp32, bf16):
        assert copy.own_bytes == 0 and copy.matrix_bytes == 2 * copy.matrix_parameters
        torch.testing.assert_close(_weight(copy.loaded), _weight(gemma), atol=0, rtol=0)
    found = dict(zip(("fp32", "bf16", "int8"), quantize.compare(gemma, [fp32.loaded, bf16.loaded, int8.loaded], TEXT)))
    assert found["fp32"].kl == 0.0 and found["bf16"].kl == 0.0
    assert found["int8"].kl > 1e-6
