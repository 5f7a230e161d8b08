"""Other architectures: tiny random GPT-2, BERT, Llama, Qwen2 and Gemma 3 models built offline from their configs, saved as
local folders and loaded like any model a user names. The engine and every model page must work on each, through
`explorer.architecture`, never by reading one family's attribute names."""

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest
from transformers import (AutoTokenizer, BertConfig, BertModel, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from explorer import activations, adapting, alignment, architecture, embeddings, interpret, memory, models, prediction, process, qlora

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TEXT = "The cat sat on the mat. 고양이가 앉았다."
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=256)
TINY = {  # name -> (config, model class, the bundled model whose tokenizer it borrows, position kind)
    "gpt2": (lambda vocab: GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256, vocab_size=vocab,
                                      bos_token_id=0, eos_token_id=0), GPT2LMHeadModel, models.SMOLLM2, "learned"),
    "bert": (lambda vocab: BertConfig(vocab_size=vocab, **SMALL), BertModel, models.MINILM, "learned"),
    "llama": (lambda vocab: LlamaConfig(vocab_size=vocab, num_key_value_heads=2, tie_word_embeddings=True,
                                        bos_token_id=1, eos_token_id=2, **SMALL), LlamaForCausalLM, models.SMOLLM2, "rotary"),
    "qwen2": (lambda vocab: Qwen2Config(vocab_size=vocab, num_key_value_heads=2, bos_token_id=1, eos_token_id=2,
                                        **SMALL), Qwen2ForCausalLM, models.SMOLLM2, "rotary"),
    # Gemma 3's layout: post-norms, (1 + w) norms, q/k norms, scaled embeddings, a sliding window (4) shorter than
    # TEXT next to a full layer, two rotary bases, and a final softcap so the logits path is exercised
    "gemma3": (lambda vocab: Gemma3TextConfig(vocab_size=vocab, num_key_value_heads=1, head_dim=16, sliding_window=4,
                                              layer_types=["sliding_attention", "full_attention"],
                                              final_logit_softcapping=3.0, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                              **SMALL), Gemma3ForCausalLM, models.SMOLLM2, "rotary"),
}
DECODERS = [name for name in TINY if name != "bert"]


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, str]:
    folders = {}
    for name, (make_config, model_class, borrowed, _) in TINY.items():
        tokenizer = AutoTokenizer.from_pretrained(models.bundled_folder(borrowed))
        torch.manual_seed(0)
        model = model_class(make_config(len(tokenizer)))
        with torch.no_grad():  # norms start at 1 (or Gemma's w = 0): move them, so that w and 1 + w differ
            for parameter_name, parameter in model.named_parameters():
                if "norm" in parameter_name and parameter_name.endswith("weight"):
                    parameter.add_(torch.randn_like(parameter) * 0.3)
        folder = tmp_path_factory.mktemp(f"tiny-{name}")
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        folders[name] = str(folder)
    return folders


@pytest.fixture(scope="module")
def tiny(tiny_folders) -> dict[str, models.LoadedModel]:
    return {name: models.load(folder, device="cpu", dtype="float32") for name, folder in tiny_folders.items()}


@pytest.mark.parametrize("name", list(TINY))
def test_parts_are_found_for_every_family(tiny, name):
    loaded = tiny[name]
    parts = loaded.parts
    assert parts.layers == 2 and len(parts.attention) == 2 and all(a is not None for a in parts.attention)
    assert parts.position_kind == TINY[name][3]
    assert (parts.unembed is not None) == (loaded.info.family == "decoder")
    assert (parts.final_norm is None) == (name == "bert")  # BERT normalises inside each block, not after the last
    assert embeddings.input_scale(loaded) == pytest.approx(8.0 if name == "gemma3" else 1.0, rel=1e-3)  # Gemma: × √64


@pytest.mark.parametrize("name", list(TINY))
def test_capture_on_every_family(tiny, name):
    loaded = tiny[name]
    names = ["embed", "blocks.*.resid_post", "blocks.*.attn.head_stats", "blocks.1.attn.pattern", "final"]
    if loaded.parts.position_kind == "learned":
        names.append("pos_embed")
    if loaded.info.family == "decoder":
        names += ["next_logits", "token_log_probs"]
    result = activations.run_capture(loaded, TEXT, names)
    seq = len(result.token_ids)
    pattern = result["blocks.1.attn.pattern"].astype(np.float32)  # (heads, seq, seq)
    np.testing.assert_allclose(pattern.sum(-1), 1, atol=2e-3)
    if loaded.info.family == "decoder":
        assert np.allclose(np.triu(pattern, 1), 0)  # causal
        with torch.inference_mode():
            logits = loaded.model(torch.as_tensor(result.token_ids)[None]).logits[0].double()  # (seq, vocab) reference
        np.testing.assert_allclose(result["next_logits"], logits[-1].numpy(), atol=1e-4)
        expected = torch.log_softmax(logits[:-1], -1).gather(-1, torch.as_tensor(result.token_ids[1:])[:, None])[:, 0]
        np.testing.assert_allclose(result["token_log_probs"], expected.numpy(), atol=1e-4)
    assert result["final"].shape == (seq, loaded.info.hidden_size)


@pytest.mark.parametrize("name", DECODERS)
def test_logit_lens_and_generation_on_every_decoder(tiny, name):
    loaded = tiny[name]
    reading = prediction.read_text(loaded, TEXT)
    assert reading.lens_ids.shape[0] == 2
    assert int(reading.lens_ids[-1, -1]) == int(reading.next_logits.argmax())  # the last layer's lens is the model
    ids = torch.as_tensor(activations.encode(loaded, TEXT)[0])[None]
    with torch.inference_mode():
        own = loaded.model(ids).logits[0, -1]  # (vocab,) with the family's softcap
    np.testing.assert_allclose(reading.next_logits, own.numpy(), atol=1e-4)
    added, _ = prediction.generate(loaded, TEXT, steps=4)
    with torch.inference_mode():
        reference = loaded.model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)[0, ids.shape[1]:]
    assert added == reference.tolist()


@pytest.mark.parametrize("name", list(TINY))
def test_positions_on_every_family(tiny, name):
    loaded = tiny[name]
    if loaded.parts.position_kind == "learned":
        assert embeddings.learned_positions(loaded, 16).shape == (16, 64)
        with pytest.raises(activations.CaptureError):
            embeddings.rotary_angles(loaded, 8)
    else:
        bases = embeddings.rotary_bases(loaded)
        assert sorted(b.base for b in bases) == ([10_000, 1_000_000] if name == "gemma3" else [10_000])
        view = embeddings.rotary_view(loaded, TEXT)
        radii = np.linalg.norm(view.pairs, axis=-1)  # (3, n): a rotation keeps each pair on its circle
        np.testing.assert_allclose(radii, np.broadcast_to(radii[:, :1], radii.shape), rtol=1e-4)
        with pytest.raises(activations.CaptureError):
            embeddings.learned_positions(loaded, 8)


PAGES = [("pages/inside.py", {}), ("pages/attention.py", {"layer": 1}), ("pages/embeddings.py", {"vmethod": "pca"}),
         ("pages/predict.py", {}), ("pages/tokens.py", {"tks": ["whitespace", "hub"]}),
         ("pages/finetune.py", {"part": "chat"}), ("pages/finetune.py", {"part": "dpo"}), ("pages/lab.py", {}),
         ("pages/quantize.py", {}), ("pages/rag.py", {})]


@pytest.mark.parametrize("page, settings", PAGES)
@pytest.mark.parametrize("name", list(TINY))
def test_every_model_page_runs_on_every_family(tiny_folders, name, page, settings):
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update({"lang": "en", "model": tiny_folders[name]})
    at.run()
    for key, value in settings.items():  # the page's own settings, as its widgets would hold them
        at.session_state[key] = value
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["_keep_model"] == tiny_folders[name]  # the tiny model itself, not a fallback
    if page in ("pages/predict.py", "pages/finetune.py", "pages/lab.py", "pages/rag.py") and name == "bert":
        assert any("decoder" in info.value for info in [*at.info, *at.warning, *at.error]), [i.value for i in at.info]
        # an encoder cannot predict: said in a sentence
    elif page not in ("pages/tokens.py", "pages/finetune.py") or settings.get("part") == "dpo":
        assert at.get("plotly_chart")


@pytest.mark.parametrize("name", DECODERS)
def test_attribution_sums_to_the_models_own_logit_on_every_decoder(tiny, name):
    """Gemma adds the post-norms of its attention and MLP outputs, scales with 1 + w and caps the logits; the
    components must still add up to the logit the model computes, and the heads to their layer's attention term."""
    loaded = tiny[name]
    ids = interpret.prompt_ids(loaded, TEXT)
    target = interpret.target_id(loaded, ids, "")
    found = interpret.attribute(loaded, ids, target)
    assert abs(found.total - found.logit) <= 1e-3 * max(1.0, abs(found.logit)), (found.total, found.logit)
    attention_terms = found.contributions[1::2]  # (layers,): "attn 0", "attn 1", …
    np.testing.assert_allclose(found.heads.sum(1) + found.head_constant, attention_terms, atol=1e-4)
    ablated = interpret.ablate(loaded, ids, target, interpret.Ablation("mlp", 1))
    assert ablated.target_after != pytest.approx(ablated.target_before)  # the MLP's write is what is removed


def test_capture_equals_eager_attention_past_the_sliding_window(tiny_folders):
    eager = Gemma3ForCausalLM.from_pretrained(tiny_folders["gemma3"], attn_implementation="eager").eval()
    loaded = models.load(tiny_folders["gemma3"], device="cpu", dtype="float32")
    result = activations.run_capture(loaded, TEXT, ["blocks.0.attn.pattern", "blocks.1.attn.pattern"])
    with torch.inference_mode():
        reference = eager(torch.as_tensor(result.token_ids)[None], output_attentions=True).attentions
    assert len(result.token_ids) > 4 * 2 and loaded.parts.windows == (4, None)
    for layer in (0, 1):
        np.testing.assert_allclose(result[f"blocks.{layer}.attn.pattern"].astype(np.float32), reference[layer][0].numpy(),
                                   atol=2e-3)
    assert np.allclose(np.tril(result["blocks.0.attn.pattern"].astype(np.float32), -4), 0)  # the band a learner sees


@pytest.mark.parametrize("name", DECODERS)
def test_lora_qlora_and_dpo_on_every_decoder_family(tiny, name):
    """PEFT picks each family's own target modules (c_attn for GPT-2, q_proj and v_proj for Llama and Qwen2), on the
    float model and on its int4 copy (GPT-2's Conv1D seen as a Linear)."""
    loaded = tiny[name]
    adapter = adapting.train_lora(loaded, "The cat sat on the mat.\n고양이가 앉았다.", adapting.LoraSettings(steps=3))
    assert adapter.trainable > 0 and len(adapter.losses) == 3
    adapted = adapting.with_adapter(loaded, adapter)
    ids = loaded.tokenizer(TEXT, return_tensors="pt")
    with torch.inference_mode(), adapted.model.disable_adapter():
        assert torch.equal(adapted.model(**ids).logits, loaded.model(**ids).logits)
    pair = alignment.PreferencePair("Say hi.", "Hi!", "No.")
    dpo = alignment.train_dpo(loaded, [pair], alignment.DpoSettings(steps=2))
    assert len(dpo.losses) == 2
    both = qlora.compare(loaded, "The cat sat on the mat.\n고양이가 앉았다.", adapting.LoraSettings(steps=2))
    assert len(both.qlora_losses) == 2 and both.memory["qlora"].frozen < both.memory["lora"].frozen


def test_the_logits_the_engine_reads_carry_the_familys_final_softcap(monkeypatch):
    """Gemma 2 caps its logits with tanh; every logit the engine reads goes through Architecture.logits, so the cap is
    applied in one place."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    from explorer import architecture

    torch.manual_seed(0)
    model = Gemma2ForCausalLM(Gemma2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                           num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                           final_logit_softcapping=0.5)).eval()
    parts = architecture.find(model)
    ids = torch.arange(8)[None]  # (1, 8)
    with torch.inference_mode():
        output = model(ids, output_hidden_states=True)
        engine = parts.logits(output.hidden_states[-1][0])  # (8, vocab) from the final (normed) states
        monkeypatch.setattr(activations, "LOGIT_CHUNK_BYTES", 100 * 4 * 7)  # 100-entry vocabulary slices
        log_probs = activations.chosen_log_probs(parts, output.hidden_states[-1][0], ids[0])
    assert parts.logit_softcap == 0.5 and float(engine.abs().max()) <= 0.5
    torch.testing.assert_close(engine, output.logits[0], atol=1e-5, rtol=1e-5)
    expected = torch.log_softmax(output.logits[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    torch.testing.assert_close(log_probs, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", DECODERS)
def test_a_table_stored_in_bfloat16_gives_float32_logits_close_to_the_wide_ones(tiny, tiny_folders, name, monkeypatch):
    """A large table (Gemma 3's) is stored narrow on the CPU, whether or not it multiplies bfloat16 natively; here
    every table counts as large. The model's own forward, the engine's sliced logits and generation all still read
    float32."""
    monkeypatch.setattr(models, "LARGE_TABLE_BYTES", 0)
    narrow = models.load(tiny_folders[name], device="cpu", dtype="float32")
    assert narrow.info.table_dtype == "bfloat16" and narrow.parts.embed.weight.dtype == torch.bfloat16
    assert memory.tensor_bytes(narrow.model) < memory.tensor_bytes(tiny[name].model)
    ids = tiny[name].tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        wide, narrowed = tiny[name].model(ids).logits, narrow.model(ids).logits  # (1, seq, vocab)
        states = torch.randn(3, narrow.parts.embed.weight.shape[1])
        sliced = narrow.parts.logits(states, slice(10, 60))  # (3, 50)
        whole = narrow.parts.logits(states)  # (3, vocab)
    assert narrowed.dtype == torch.float32 and sliced.dtype == torch.float32
    torch.testing.assert_close(narrowed, wide, atol=0.05, rtol=0.02)
    torch.testing.assert_close(sliced, whole[:, 10:60])
    assert prediction.generate(narrow, TEXT, 3)[0] == prediction.generate(tiny[name], TEXT, 3)[0]


@pytest.mark.parametrize("name", DECODERS)
def test_block_matrices_stored_in_bfloat16_compute_in_float32_close_to_the_wide_model(tiny, tiny_folders, name):
    """Gemma 3's block matrices are stored in bfloat16 (models.NARROW_BLOCK_PARAMETERS); the same on every family
    with nn.Linear blocks: float32 between modules, logits close to the float32 model's, the same greedy tokens, and a
    backward to the inputs (LoRA's) after an inference-mode forward has made the widening buffer."""
    narrow = models.load(tiny_folders[name], device="cpu", dtype="float32")
    stored = models.narrow_block_matrices(narrow.parts, torch.device("cpu"))
    linears = [m for block in narrow.parts.blocks for m in block.modules() if isinstance(m, torch.nn.Linear)]
    if name == "gpt2":  # Conv1D blocks: nothing to narrow
        assert stored == "" and not linears
        return
    assert stored == "bfloat16" and linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    assert memory.tensor_bytes(narrow.model) < memory.tensor_bytes(tiny[name].model)
    ids = tiny[name].tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        wide, narrowed = tiny[name].model(ids).logits, narrow.model(ids).logits  # (1, seq, vocab)
    assert narrowed.dtype == torch.float32
    torch.testing.assert_close(narrowed, wide, atol=0.05, rtol=0.02)
    assert prediction.generate(narrow, TEXT, 3)[0] == prediction.generate(tiny[name], TEXT, 3)[0]
    embedded = narrow.model.get_input_embeddings()(ids).detach().requires_grad_(True)  # (1, seq, d)
    narrow.model(inputs_embeds=embedded).logits.sum().backward()
    assert embedded.grad is not None and torch.isfinite(embedded.grad).all()


@pytest.mark.parametrize("native", [True, False])
def test_a_bfloat16_table_multiplies_like_its_float32_widening_forward_and_backward(monkeypatch, native):
    """Both ways a bfloat16 table is multiplied on the CPU (natively in bfloat16; widened a few rows at a time where the
    CPU has no bfloat16 instructions), against float32 arithmetic on the same rounded table: logits, the gradient a
    training sends back to the states, and the table's own (a full fine-tuning's), over a vocabulary that is not a
    multiple of the slice."""
    monkeypatch.setattr(process, "native_bf16", lambda: native)
    monkeypatch.setattr(architecture, "WIDENED_ELEMENTS", 7 * 16)  # 7 rows a slice
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(50, 16).to(torch.bfloat16))  # (rows, d)
    states = torch.randn(2, 3, 16, requires_grad=True)  # (batch, seq, d)
    product = architecture.table_product(states, table)  # (2, 3, 50)
    (product * torch.linspace(-1, 1, 50)).sum().backward()
    wide_table = table.detach().float().requires_grad_(True)
    wide_states = states.detach().clone().requires_grad_(True)
    expected = wide_states @ wide_table.T
    (expected * torch.linspace(-1, 1, 50)).sum().backward()
    tolerance = {"atol": 0.1, "rtol": 0.02} if native else {"atol": 1e-5, "rtol": 1e-5}  # native: bfloat16 states
    assert product.dtype == torch.float32 and product.shape == (2, 3, 50)
    torch.testing.assert_close(product, expected, **tolerance)
    torch.testing.assert_close(states.grad, wide_states.grad, **tolerance)
    torch.testing.assert_close(table.grad.float(), wide_table.grad, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("name", DECODERS)
def test_a_frozen_copys_last_logits_are_one_matrix_multiply_not_a_copy_of_the_table(tiny, name):
    """A frozen copy's weights need no gradient, and torch.matmul then multiplied the last position's slice (which
    keeps the whole sequence's strides) by expanding the transposed table into a (1, d, vocab) copy: Gemma 3's 320 MB
    and ~0.7 s a forward, on every quantized copy and adapter view. No op may see a tensor of that shape."""
    from torch.profiler import ProfilerActivity, profile

    loaded = tiny[name]
    view = adapting.frozen_view(loaded)
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    vocab, width = loaded.parts.unembed.weight.shape
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiled:
        last = view(ids, logits_to_keep=1).logits  # (1, 1, vocab)
    shapes = [shape for event in profiled.events() for shape in event.input_shapes]
    assert [1, width, vocab] not in shapes
    torch.testing.assert_close(last[0, -1], loaded.model(ids).logits[0, -1], atol=1e-5, rtol=1e-5)
