"""Embeddings on the real bundled models (engine for the embeddings page)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import embeddings, models
from explorer.labels import vocabulary_labels

ROOT = Path(__file__).resolve().parent.parent
DATA = json.loads((ROOT / "assets" / "embeddings.json").read_text(encoding="utf-8"))


def test_sentence_vectors_equal_sentence_transformers_own(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(models.minilm_folder()), device="cpu")  # reads the package's pooling config
    sentences = DATA["sentences"] + ["", "👍🏽 한\u200b글 e\u0301", "word " * 400]
    ours = embeddings.sentence_embeddings(minilm, sentences, batch=7)
    np.testing.assert_allclose(ours, reference.encode(sentences, batch_size=7), atol=2e-5)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_search_ranks_the_matching_sentence_first(minilm):
    vectors = embeddings.sentence_embeddings(minilm, DATA["sentences"])
    query = embeddings.sentence_embeddings(minilm, ["Did interest rates go up?"])[0]
    order, similarity = embeddings.rank_sentences(query, vectors)
    assert DATA["sentences"][order[0]] == "The central bank raised interest rates."
    assert np.all(np.diff(similarity) <= 0)


@pytest.mark.parametrize("fixture", ["minilm", "smollm"])
def test_a_tokens_nearest_neighbour_is_itself_at_similarity_one(fixture, request):
    loaded = request.getfixturevalue(fixture)
    unit = embeddings.unit_rows(embeddings.vocabulary_matrix(loaded))
    for token_id in (100, 2000, unit.shape[0] - 1):
        ids, sims = embeddings.neighbours(unit, unit[token_id], 5)
        assert ids[0] == token_id and sims[0] == pytest.approx(1.0, abs=1e-5) and np.all(np.diff(sims) <= 1e-7)


def test_labels_are_readable_and_kinds_cover_the_vocabulary(smollm, minilm):
    labels = vocabulary_labels(smollm.tokenizer)
    assert len(labels) == 49152 and not any(c in "".join(labels) for c in "ĠĊ")
    kinds = embeddings.token_kinds(smollm.tokenizer, labels)
    assert set(kinds) <= set(embeddings.TOKEN_KINDS)
    assert kinds[0] == "special" and kinds[labels.index(" the")] == "latin_word" and "byte_piece" in kinds
    wordpiece = embeddings.token_kinds(minilm.tokenizer, vocabulary_labels(minilm.tokenizer))
    assert wordpiece[minilm.tokenizer.convert_tokens_to_ids("##ing")] == "continuation"
    assert wordpiece[minilm.tokenizer.convert_tokens_to_ids("[CLS]")] == "special"
    assert (wordpiece == "hangul").sum() > 10


def test_analogy_on_one_token_words_and_an_honest_flag_on_split_words(minilm):
    unit = embeddings.unit_rows(embeddings.vocabulary_matrix(minilm))
    found = embeddings.analogy(minilm.tokenizer, unit, "king", "man", "woman")
    assert minilm.tokenizer.convert_ids_to_tokens(found.answers[0][0]) == "queen" and not found.split_words
    korean = embeddings.analogy(minilm.tokenizer, unit, "왕", "남자", "여자")
    assert korean.split_words  # jamo pieces: the page says the arithmetic is rough here


def test_rotary_rotation_keeps_lengths_and_equals_transformers(smollm):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    queries, labels = embeddings.first_layer_queries(smollm, "안녕 세상아, hello world")
    n = len(queries)
    rotated = embeddings.rotate(queries, embeddings.rotary_angles(smollm, n))  # (n, head_dim)
    np.testing.assert_allclose(np.linalg.norm(rotated, axis=1), np.linalg.norm(queries, axis=1), rtol=1e-5)
    cos, sin = smollm.model.model.rotary_emb(torch.zeros(1, n, queries.shape[1]), torch.arange(n)[None])
    as_tensor = torch.as_tensor(queries)[None, None]  # (1, 1, n, head_dim)
    reference, _ = apply_rotary_pos_emb(as_tensor, as_tensor, cos, sin)
    np.testing.assert_allclose(rotated, reference[0, 0].numpy(), atol=1e-5)
    assert len(labels) == n


def test_positions_learned_sinusoidal_and_none_for_rotary(minilm, smollm):
    table = embeddings.learned_positions(minilm, 128)
    assert table.shape == (128, 384)
    similarity = embeddings.cosine_matrix(table)
    assert similarity[10, 11] > similarity[10, 100]  # nearby positions are alike
    waves = embeddings.sinusoidal(50, 16)
    assert waves[0, 0] == 0 and waves[0, 1] == 1 and np.allclose(waves[:, 0], np.sin(np.arange(50)))
    with pytest.raises(embeddings.activations.CaptureError):
        embeddings.learned_positions(smollm, 8)


def test_cached_projection_reloads_equal_and_a_corrupt_file_is_recomputed(minilm, tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "SHIPPED", tmp_path / "none")
    monkeypatch.setenv("EXPLORER_CACHE_DIR", str(tmp_path))
    first = embeddings.vocabulary_projection(minilm, "pca", 2)
    path = embeddings.projection_path(minilm.info.key, "pca", 2, fingerprint=minilm.fingerprint)
    assert path.exists() and first.shape == (30522, 2)
    again = embeddings.vocabulary_projection(minilm, "pca", 2)
    np.testing.assert_array_equal(again, np.load(path).astype(np.float32))
    np.testing.assert_allclose(again, first, atol=0.02 * np.abs(first).max())  # stored as float16
    path.write_bytes(b"not a numpy file")
    np.testing.assert_allclose(embeddings.vocabulary_projection(minilm, "pca", 2), first, atol=0.02 * np.abs(first).max())


def test_shipped_projections_match_the_bundled_vocabularies(minilm, smollm):
    for loaded in (minilm, smollm):
        for dims in (2, 3):
            stored = np.load(embeddings.projection_path(loaded.info.key, "umap", dims, embeddings.SHIPPED))
            assert stored.shape == (len(loaded.tokenizer), dims) and np.isfinite(stored).all()


def test_on_demand_projections_of_a_subset(minilm):
    points = embeddings.vocabulary_matrix(minilm)[1000:1300]
    for method in embeddings.METHODS:
        assert embeddings.project(points, method, 2).shape == (300, 2)
    assert embeddings.project(points[:2], "umap", 2).shape == (2, 2)  # too few points for UMAP: still an answer


def test_numpy_pca_equals_scikit_learns(minilm):
    from sklearn.decomposition import PCA

    points = embeddings.vocabulary_matrix(minilm)[2000:2400].astype(np.float64)
    for dims in (2, 3):
        np.testing.assert_allclose(embeddings.pca(points, dims), PCA(n_components=dims).fit_transform(points), atol=1e-4)


def test_senses_separate_through_the_layers(minilm):
    entry = DATA["polysemy"][0]
    states = np.stack([embeddings.contextual_states(minilm, use["text"], entry["word"]) for use in entry["uses"]])
    assert states.shape == (6, 7, 384)
    within, across = embeddings.sense_similarity(states, [use["sense"]["en"] for use in entry["uses"]])
    assert within[-1] > across[-1]  # by the last layer, same-sense uses are closer than different-sense ones
    assert (within[-1] - across[-1]) > (within[0] - across[0])  # …and more so than at the input


def test_unit_rows_without_a_copy_give_the_same_neighbours(smollm):
    matrix = embeddings.vocabulary_matrix(smollm)
    shared = embeddings.vocabulary_rows(smollm)
    assert shared.table.data_ptr() == smollm.model.get_input_embeddings().weight.data_ptr()  # no copy
    copied = embeddings.unit_rows(matrix)
    ids = [100, 2000, 30000]
    np.testing.assert_allclose(shared[ids], copied[ids], atol=1e-6)
    for token_id in ids:
        expected_ids, expected_sims = embeddings.neighbours(copied, copied[token_id], 8)
        found_ids, found_sims = embeddings.neighbours(shared, shared[token_id], 8)
        np.testing.assert_array_equal(found_ids, expected_ids)
        np.testing.assert_allclose(found_sims, expected_sims, atol=1e-5)
    np.testing.assert_array_equal(embeddings.neighbour_ids(shared, ids, 8)[:, 0], ids)  # a token is its own nearest
