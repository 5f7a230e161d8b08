"""Attention summaries on the real models."""

import numpy as np

from explorer import attention
from explorer.activations import run_capture

TEXT = "어텐션은 각 토큰이 어디를 보는지 정합니다. Attention decides where each token looks."


def test_rollout_rows_sum_to_one_and_stay_causal(smollm):
    layers = smollm.info.layers
    result = run_capture(smollm, TEXT, ["blocks.*.attn.pattern"])
    means = np.stack([result[f"blocks.{i}.attn.pattern"].astype(np.float64).mean(0) for i in range(layers)])  # (layers, seq, seq)
    rolled = attention.rollout(means)
    np.testing.assert_allclose(rolled.sum(-1), 1.0, atol=1e-6)
    assert np.abs(np.triu(rolled, k=1)).max() < 1e-9  # a decoder's rollout never reaches the future
    assert rolled[-1, 0] > rolled[-1, 1:].mean()  # the first token soaks up attention (a sink) through the layers


def test_rollout_without_the_residual_path_is_the_plain_product():
    seq = 5
    rng = np.random.default_rng(0)
    patterns = rng.random((3, seq, seq))
    patterns /= patterns.sum(-1, keepdims=True)  # (3, seq, seq) row-stochastic
    np.testing.assert_allclose(attention.rollout(patterns, residual_weight=0.0), patterns[2] @ patterns[1] @ patterns[0])


def test_pooled_overview_becomes_a_transition_matrix(minilm):
    result = run_capture(minilm, TEXT * 4, ["blocks.0.attn.pooled"], pooled_size=16)
    seq = len(result.token_ids)
    transitions = attention.pooled_to_transitions(result["blocks.0.attn.pooled"], seq)  # (heads, 16, 16)
    np.testing.assert_allclose(transitions.sum(-1), 1.0, atol=1e-3)
    assert attention.window(transitions, 4, 8).shape == (minilm.info.query_heads, 8, 8)
