"""The interpretability lab on the real SmolLM2: attributions add up, interventions that change nothing change
nothing, patching restores what it should, steering at strength 0 is plain generation, the shared model is untouched."""

import numpy as np
import pytest
import torch

from explorer import interpret, prediction
from explorer.activations import CaptureError
from explorer.models import weights_fingerprint

CLEAN, CORRUPT = "The capital of France is", "The capital of Italy is"


@pytest.fixture(scope="module")
def prompt(smollm):
    return interpret.prompt_ids(smollm, CLEAN)


def test_attributions_sum_to_the_target_logit_and_heads_to_their_layer(smollm, prompt):
    target = interpret.target_id(smollm, prompt, "")
    assert smollm.tokenizer.decode([target]) == " Paris"  # the top prediction by default
    found = interpret.attribute(smollm, prompt, target)
    assert found.total == pytest.approx(found.logit, abs=1e-3)  # RMSNorm linearised at the whole sum's RMS: exact
    attention = found.contributions[1::2]  # "embed", then attn 0, mlp 0, attn 1, …
    assert np.allclose(found.heads.sum(1) + found.head_constant, attention, atol=1e-4)
    assert found.heads.shape == (30, 9)
    with torch.inference_mode():
        logits = smollm.model(torch.tensor([prompt]), logits_to_keep=1).logits[0, -1]
    assert found.logit == pytest.approx(float(logits[target]), abs=1e-4)  # the model's own logit
    # the same bound as the logits': float32 sums in another order (AVX2 against AVX-512 kernels) moved it 1.5e-5
    assert found.probability == pytest.approx(float(torch.softmax(logits, -1)[target]), abs=1e-4)


def test_a_target_that_is_several_tokens_is_refused_with_its_pieces(smollm, prompt):
    assert interpret.target_id(smollm, prompt, "Paris") == interpret.target_id(smollm, prompt, " Paris")
    with pytest.raises(CaptureError) as refused:
        interpret.target_id(smollm, prompt, "antidisestablishment")
    assert refused.value.kind == "lab_target_not_one_token" and "|" in refused.value.detail


def test_ablating_nothing_changes_nothing_and_a_knocked_out_layer_moves_the_prediction(smollm, prompt):
    target = interpret.target_id(smollm, prompt, "")
    plain = interpret.last_logits(smollm, [prompt, prompt])  # the same batch shape, so the same arithmetic
    for other in (None, interpret.Ablation("head", 5, 2), interpret.Ablation("layer", 3, mode="mean")):
        found = interpret.last_logits(smollm, [prompt, prompt], *interpret._ablation_hooks(smollm, [None, other]))
        assert np.array_equal(found[0], plain[0])  # the row with no ablation is exactly the model's own
    knocked = interpret.ablate(smollm, prompt, target, interpret.Ablation("layer", 0))
    assert knocked.target_after < 0.01 < knocked.target_before
    mean = interpret.ablate(smollm, prompt, target, interpret.Ablation("mlp", 29, mode="mean"))
    assert mean.target_after != mean.target_before


def test_the_head_sweep_row_equals_the_single_ablation(smollm, prompt):
    target = interpret.target_id(smollm, prompt, "")
    sweep = interpret.head_sweep(smollm, prompt, target)
    assert sweep.shape == (30, 9)
    single = interpret.ablate(smollm, prompt, target, interpret.Ablation("head", 23, 4))
    assert sweep[23, 4] == pytest.approx(single.target_after, abs=1e-5)  # batched rows do not leak into each other


def test_patching_clean_into_clean_changes_nothing_and_the_final_residual_restores_the_clean_logits(smollm):
    clean, corrupt = interpret.same_length(smollm, CLEAN, CORRUPT)
    source = interpret.residuals(smollm, clean)  # (31, seq, d)
    everywhere = [[(layer, position) for layer in range(31) for position in range(len(clean))]]
    assert np.array_equal(interpret.patched_logits(smollm, clean, source, everywhere)[0],
                          interpret.last_logits(smollm, [clean])[0])
    final = [[(30, position) for position in range(len(clean))]]
    assert np.array_equal(interpret.patched_logits(smollm, corrupt, source, final)[0],
                          interpret.last_logits(smollm, [clean])[0])
    found = interpret.patch_residual_sweep(smollm, clean, corrupt)
    assert smollm.tokenizer.decode([found.clean_token]) == " Paris" and smollm.tokenizer.decode([found.corrupt_token]) == " Rome"
    assert found.recovered[-1, -1] == pytest.approx(1.0) and found.recovered[0, -1] == pytest.approx(0.0, abs=1e-4)
    assert found.recovered[0, 3] == pytest.approx(1.0, abs=1e-4)  # block 0's input at "France" is the whole difference


def test_patching_needs_prompts_of_the_same_length(smollm):
    with pytest.raises(CaptureError) as refused:
        interpret.same_length(smollm, CLEAN, "The capital of the United Kingdom is")
    assert refused.value.kind == "lab_lengths_differ"


def _hooks(model) -> set:
    """Every hook on the model (transformers installs its own output-capturing ones for output_hidden_states)."""
    return {(name, key) for name, module in model.named_modules()
            for key in [*module._forward_hooks, *module._forward_pre_hooks]}


def test_steering_at_strength_zero_is_plain_generation_and_never_touches_the_model(smollm, prompt):
    fingerprint, hooks = weights_fingerprint(smollm.model), _hooks(smollm.model)
    direction = interpret.steering_direction(smollm, ["I love this, it is wonderful."], ["I hate this, it is awful."], 12)
    assert interpret.steered_generation(smollm, prompt, 12, direction, 0.0, 8) == prediction.generate_ids(smollm, prompt, 8)[0]
    assert interpret.steered_generation(smollm, prompt, 12, direction, 8.0, 8) != prediction.generate_ids(smollm, prompt, 8)[0]
    ends, scores = interpret.direction_vocabulary(smollm, direction, 5)
    assert len(ends) == 10 and np.all(np.diff(scores) <= 0) and scores[0] > 0 > scores[-1]
    assert weights_fingerprint(smollm.model) == fingerprint
    assert _hooks(smollm.model) == hooks  # every hook the lab added is gone
    with pytest.raises(CaptureError):
        interpret.steering_direction(smollm, [" "], ["I hate this."], 12)


def test_removing_a_layer_raises_perplexity_and_nothing_removed_is_the_models_own(smollm):
    text = "The cat sat on the mat. 고양이가 매트 위에 앉았다. The dog slept by the door all afternoon."
    found = interpret.layer_removal(smollm, text, 64)
    ids = torch.tensor(interpret.encode(smollm, text, 64)[0])
    with torch.inference_mode():
        loss = smollm.model(ids[None], labels=ids[None]).loss
    assert found[0] == pytest.approx(float(torch.exp(loss)), rel=1e-4)
    assert found[1] > 10 * found[0]  # without block 0 nothing makes sense
