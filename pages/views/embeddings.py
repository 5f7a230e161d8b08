"""Embedding views: text to vectors, the vocabulary on a map, neighbours and analogies, meaning in context, sentence search."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer import embeddings, figures, models
from explorer.i18n import t
from explorer.labels import token_labels, visible, vocabulary_labels
from pages.common import capture_or_explain, current_model, lang, one_of, show_figure, tr, translated, url_state, working

DATA = json.loads((Path(__file__).resolve().parents[2] / "assets" / "embeddings.json").read_text(encoding="utf-8"))
PARAMS = ("etext", "vmethod", "vdims", "vscript", "find", "word", "smethod", "poly", "query")
MAX_UPLOAD_BYTES = 200_000


def _vocabulary(loaded) -> tuple[embeddings.UnitRows, list[str], np.ndarray]:
    """The table's rows at unit length (a view of the model's own table), every token's label and kind."""
    def build():
        labels = vocabulary_labels(loaded.tokenizer)
        return embeddings.vocabulary_rows(loaded), labels, embeddings.token_kinds(loaded.tokenizer, labels)

    return models.derived(loaded, "vocabulary", build, measure=lambda found: found[0].norms.nbytes + found[2].nbytes
                          + sum(map(sys.getsizeof, found[1])))


@st.cache_resource(show_spinner=False, max_entries=6)
def _projection(_loaded, fingerprint: str, method: str, dims: int) -> np.ndarray:
    return embeddings.vocabulary_projection(_loaded, method, dims)


@st.cache_resource(show_spinner=False, max_entries=4)
def _vocabulary_figure(_coordinates, _kinds, _labels, model_key: str, fingerprint: str, method: str, dims: int,
                       highlight: tuple[int, ...], language: str, script: str):
    """49,152 WebGL points take plotly ~0.3 s to validate: built once per projection, highlight, language and script."""
    kind_names = {kind: t(f"kind_{kind}", language) for kind in embeddings.TOKEN_KINDS}
    shown = embeddings.map_ids(_kinds, script)
    title = t("emb_map_title", language, n=len(_labels), model=model_key) if len(shown) == len(_labels) else \
        t("emb_map_title_part", language, shown=len(shown), n=len(_labels), model=model_key)
    return figures.vocabulary_map(_coordinates, _kinds, _labels, kind_names, list(highlight), title, shown)


@st.cache_resource(show_spinner=False, max_entries=8)
def _layer_list(layers: list[int]) -> str:
    return ", ".join(map(str, layers)) if len(layers) <= 6 else f"{layers[0]}, {layers[1]}, … {layers[-1]}"


def _table_figure(name: str, _values, rows: int, title: str, x_label: str, y_label: str, fingerprint: str):
    """A heatmap that depends only on the model and the language (position tables), built once."""
    return figures.matrix_heatmap(_values(), [str(i) for i in range(rows)], title, x_label, y_label,
                                  list(range(rows)) if name == "position_similarity" else None)


@st.cache_data(show_spinner=False, max_entries=16)
def _contexts(_loaded, fingerprint: str, word: str, sentences: tuple[str, ...]) -> np.ndarray:
    return np.stack([embeddings.contextual_states(_loaded, s, word) for s in sentences])  # (uses, layers + 1, d)


@st.cache_data(show_spinner=False, max_entries=16)
def _sentence_vectors(_minilm, fingerprint: str, sentences: tuple[str, ...]) -> np.ndarray:
    return embeddings.sentence_embeddings(_minilm, list(sentences))


@st.cache_data(show_spinner=False, max_entries=32)
def _subset(_unit, fingerprint: str, ids: tuple[int, ...], method: str) -> np.ndarray:
    return embeddings.project(_unit[list(ids)], method, 2)


@st.fragment(run_every=2)
def _wait_for_umap() -> None:
    """Polls while UMAP compiles in the background; the whole page reruns (with UMAP) once it is ready."""
    if embeddings.umap_is_warm():
        st.rerun(scope="app")
    st.progress(0.5, text=tr("emb_umap_compiling"))


def text_to_vectors(loaded):
    """The text's tokens, their vectors, positions added: returns the capture (None: refused)."""
    st.header(tr("emb_text_to_vectors"))
    text = st.text_area(tr("emb_text"), key=url_state("etext", tr("emb_sample")), height=70)
    position_kind = loaded.parts.position_kind
    names = ["embed", "blocks.0.resid_pre"] + (["pos_embed"] if position_kind == "learned" else [])
    result = capture_or_explain(loaded, text, names, max_tokens=64)
    if result is not None:
        token_rows = [f"{visible(label)} ({int(i)})" for label, i in zip(token_labels(result), result.token_ids)]
        st.caption(tr("emb_steps", n=len(token_rows), d=result["embed"].shape[1]))
        show_figure(figures.matrix_heatmap(result["embed"], token_rows, tr("emb_token_rows"), tr("dimension"), tr("token")),
                    "token_embeddings", pd.DataFrame(result["embed"], index=token_rows).reset_index(), key="embed_rows")
        scale = embeddings.input_scale(loaded)
        if abs(scale - 1) > 1e-3:  # Gemma: rows × √d on the way in
            st.caption(tr("emb_input_scale", model=loaded.info.key, scale=scale, d=loaded.info.hidden_size))
        if "pos_embed" in names:
            positions = embeddings.learned_positions(loaded, 128)
            left, right = st.columns(2)
            with left:
                show_figure(figures.matrix_heatmap(result["pos_embed"], token_rows, tr("emb_position_rows"), tr("dimension"), tr("token")),
                            "position_rows", key="pos_rows")
            with right:
                similarity = embeddings.cosine_matrix(positions)
                show_figure(_table_figure("position_similarity", lambda: similarity, 128, tr("emb_position_similarity"),
                                          tr("position"), tr("position"), loaded.fingerprint),
                            "position_similarity", pd.DataFrame(similarity), key="pos_sim")
            st.caption(tr("emb_learned_explain"))
        elif position_kind == "rotary" and loaded.parts.query_projection(0) is not None:
            turned = embeddings.rotary_view(loaded, text)
            bases = embeddings.rotary_bases(loaded)
            columns = st.columns(1 + len(bases))
            with columns[0]:
                show_figure(figures.rotary_circles(turned.pairs, list(range(turned.pairs.shape[1])),
                                                   [tr("emb_pair", i=i) for i in turned.pair_ids],
                                                   tr("emb_rotary_title", token=visible(turned.token))),
                            "rotary_pairs", key="rotary")
            for column, base in zip(columns[1:], bases):
                with column:
                    show_figure(_table_figure("rotary_angles", lambda b=base: np.cos(embeddings.rotary_angles(loaded, 64, b.layer_type)),
                                              64, tr("emb_rotary_angles", base=f"{base.base:,}"), tr("emb_pair_axis"),
                                              tr("position"), loaded.fingerprint),
                                "rotary_angles", key=f"rotary_angles_{base.layer_type}")
            st.caption(tr("emb_rotary_explain", model=loaded.info.key))
            if len(bases) > 1:
                st.caption(tr("emb_rotary_bases", model=loaded.info.key, bases=", ".join(
                    tr("emb_rotary_base", base=f"{b.base:,}", count=len(b.layers), layers=_layer_list(b.layers)) for b in bases)))
        else:
            st.info(tr("emb_positions_not_shown", kind=tr(f"position_kind_{position_kind}")))
        show_figure(figures.matrix_heatmap(result["blocks.0.resid_pre"], token_rows, tr("emb_first_layer_input"), tr("dimension"), tr("token")),
                    "first_layer_input", key="first_input")
        show_figure(_table_figure("sinusoidal", lambda: embeddings.sinusoidal(64, 128), 64, tr("emb_sinusoidal"),
                                  tr("dimension"), tr("position"), ""), "sinusoidal", key="sinusoidal")
        st.caption(tr("emb_sinusoidal_explain"))
    return result


def vocabulary(loaded, result):
    """The whole vocabulary on a map, a word's neighbours, and a subset projected on demand."""
    key = loaded.info.key
    unit, labels, kinds = _vocabulary(loaded)
    label_ids = {label: i for i, label in enumerate(labels)}  # a token chip's link names a vocabulary entry exactly
    st.header(tr("emb_map"))
    left, middle, script_column, right = st.columns([2, 1, 3, 3])
    method = left.radio(tr("emb_method"), ["umap", "pca"], horizontal=True, key=url_state("vmethod", "umap", one_of(("umap", "pca"))),
                        format_func=translated("method_"))
    dims = middle.radio(tr("emb_dims"), [2, 3], horizontal=True, key=url_state("vdims", 2, one_of((2, 3), int)))
    script = script_column.radio(tr("emb_script"), embeddings.SCRIPTS, horizontal=True, format_func=translated("script_"),
                                 key=url_state("vscript", "all", one_of(embeddings.SCRIPTS)))
    find = right.text_input(tr("emb_find"), key=url_state("find", ""), placeholder="king, 한국, ##ing")
    with working("emb_projecting"):
        coordinates = _projection(loaded, loaded.fingerprint, method, dims)
    wanted = [w.strip() for w in find.split(",") if w.strip()]
    found = [i for i, label in enumerate(labels) if any(w.lower() == label.strip().lower() for w in wanted)][:50]
    if wanted and not found:
        found = [i for i, label in enumerate(labels) if any(w.lower() in label.lower() for w in wanted)][:50]
    if wanted:
        st.caption(tr("emb_found", n=len(found)))
    highlight = found or ([int(i) for i in result.token_ids[:40]] if result is not None else [])
    kind_names = {kind: tr(f"kind_{kind}") for kind in embeddings.TOKEN_KINDS}
    event = st.plotly_chart(_vocabulary_figure(coordinates, kinds, labels, key, loaded.fingerprint, method, dims,
                                              tuple(highlight), lang(), script),
                            key="vocab_map", on_select="rerun", selection_mode=("points",),
                            config={"displaylogo": False, "toImageButtonOptions": {"filename": "vocabulary_map"}})
    st.caption(tr("emb_map_explain"))
    picked = [p.get("customdata") for p in (event.selection.points if event and event.selection else []) if p.get("customdata") is not None]
    word = st.text_input(tr("emb_word"), key=url_state("word", labels[picked[0]].strip() if picked else ""),
                         placeholder="king")
    if picked:
        word = labels[int(picked[0])].strip()
    if word:
        exact = next((i for i in (label_ids.get(word), label_ids.get(" " + word)) if i is not None), None)
        pieces = [exact] if exact is not None else embeddings.word_pieces(loaded.tokenizer, word)
        if not pieces:
            st.warning(tr("error_empty_text"))
        else:
            ids, sims = embeddings.neighbours(unit, unit[pieces].mean(axis=0), 12)
            st.caption(tr("emb_neighbours_of", word=word, pieces=" + ".join(visible(labels[i]) for i in pieces)))
            table = pd.DataFrame({tr("token"): [visible(labels[i]) for i in ids], "id": ids, tr("cosine"): sims.round(3)})
            st.dataframe(table, hide_index=True)

    # ---- a subset, projected on demand
    st.subheader(tr("emb_subset"))
    left, right = st.columns([1, 2])
    subset_method = left.radio(tr("emb_method"), list(embeddings.METHODS), horizontal=True, key=url_state("smethod", "pca", one_of(embeddings.METHODS)),
                               format_func=translated("method_"))
    word_list = right.text_input(tr("emb_word_list"), key="word_list", placeholder="cat, dog, 고양이, Paris, Seoul")
    seeds = [i for w in word_list.split(",") if w.strip() for i in embeddings.word_pieces(loaded.tokenizer, w)[:1]] \
        if word_list.strip() else ([int(i) for i in result.token_ids[:40]] if result is not None else [])
    if seeds:
        seeds = list(dict.fromkeys(seeds))
        chosen_ids = list(dict.fromkeys(seeds + embeddings.neighbour_ids(unit, seeds, 11).ravel().tolist()))
        chosen_ids = chosen_ids[:embeddings.MAX_SUBSET]
        if subset_method == "umap" and not embeddings.umap_is_warm():
            embeddings.start_umap_warm_up()  # only when asked for: numba's compiled UMAP stays in the process (~350 MB)
            st.info(tr("emb_umap_warming"))
            _wait_for_umap()
            subset_method = "pca"
        with working("emb_projecting"):
            subset_points = _subset(unit, loaded.fingerprint, tuple(chosen_ids), subset_method)
        show_figure(figures.vocabulary_map(subset_points, kinds[chosen_ids], [labels[i] for i in chosen_ids], kind_names,
                                           list(range(len(seeds))), tr("emb_subset_title", n=len(chosen_ids), method=t(f"method_{subset_method}", lang()))),
                    "subset_map", pd.DataFrame({"token": [labels[i] for i in chosen_ids], "id": chosen_ids,
                                                "x": subset_points[:, 0], "y": subset_points[:, 1]}), key="subset_map")
        st.caption(tr("emb_subset_explain"))


def analogies(loaded):
    """a − b + c among the token vectors."""
    unit, labels, kinds = _vocabulary(loaded)
    st.header(tr("emb_analogy"))
    first, second, third = st.columns(3)
    a = first.text_input("a", value=DATA["analogies"][0][0], key="analogy_a")
    b = second.text_input("− b", value=DATA["analogies"][0][1], key="analogy_b")
    c = third.text_input("+ c", value=DATA["analogies"][0][2], key="analogy_c")
    if a.strip() and b.strip() and c.strip():
        found_analogy = embeddings.analogy(loaded.tokenizer, unit, a, b, c)
        st.dataframe(pd.DataFrame({tr("token"): [visible(labels[i]) for i, _ in found_analogy.answers],
                                   tr("cosine"): [round(s, 3) for _, s in found_analogy.answers]}), hide_index=True)
        if found_analogy.split_words:
            st.warning(tr("emb_analogy_split", words=", ".join(found_analogy.split_words)))
    st.caption(tr("emb_analogy_explain"))


def in_context(loaded):
    """The same word in different sentences, layer by layer."""
    unit, labels, kinds = _vocabulary(loaded)
    st.header(tr("emb_context"))
    sets = {entry["word"]: entry for entry in DATA["polysemy"]}
    chosen = st.radio(tr("emb_context_word"), list(sets), horizontal=True, key=url_state("poly", "bank", one_of(sets)))
    entry = sets[chosen]
    uses = tuple(use["text"] for use in entry["uses"])
    senses = [use["sense"][lang()] for use in entry["uses"]]
    with working("running_model"):
        states = _contexts(loaded, loaded.fingerprint, entry["word"], uses)  # (uses, layers + 1, d)
    # unit length first: the last layers' vectors are far longer and would otherwise squeeze the early layers to a dot
    flat = embeddings.project(embeddings.unit_rows(states.reshape(-1, states.shape[-1])), "pca", 2).reshape(len(uses), -1, 2)
    show_figure(figures.context_paths(flat, senses, list(uses), tr("emb_context_title", word=entry["word"]), tr("layer")),
                "context_paths", key="context_paths")
    within, across = embeddings.sense_similarity(states, senses)
    show_figure(figures.sense_lines(within, across, tr("emb_sense_title"), tr("emb_within"), tr("emb_across"), tr("layer"), tr("cosine")),
                "sense_similarity", pd.DataFrame({"layer": range(len(within)), "within": within, "across": across}), key="sense_lines")
    st.caption(tr("emb_context_explain"))


def sentence_search(loaded):
    """Sentence vectors (MiniLM) and search by meaning."""
    unit, labels, kinds = _vocabulary(loaded)
    st.header(tr("emb_search"))
    minilm = current_model(models.MINILM)
    upload = st.file_uploader(tr("emb_upload"), type=["txt"], key="sentences_upload")
    default = "\n".join(DATA["sentences"])
    if upload is not None:
        if upload.size > MAX_UPLOAD_BYTES:
            st.warning(tr("emb_upload_too_big", limit=MAX_UPLOAD_BYTES))
        else:
            default = upload.getvalue().decode("utf-8", "replace")
    lines = st.text_area(tr("emb_sentences"), value=default, height=180, key="sentences")
    sentences = [line.strip() for line in lines.splitlines() if line.strip()][:embeddings.MAX_SENTENCES]
    query = st.text_input(tr("emb_query"), key=url_state("query", tr("emb_query_sample")))
    if minilm is not None and len(sentences) >= 2:
        vectors = _sentence_vectors(minilm, minilm.fingerprint, tuple(sentences))  # (n, d) unit rows
        scores = None
        if query.strip():
            query_vector = _sentence_vectors(minilm, minilm.fingerprint, (query,))[0]  # (d,) unit length
            order, similarity = embeddings.rank_sentences(query_vector, vectors)
            scores = vectors @ query_vector
            st.dataframe(pd.DataFrame({"#": range(1, len(order) + 1), tr("emb_sentence"): [sentences[i] for i in order],
                                       tr("cosine"): similarity.round(3)}).head(8), hide_index=True)
        left, right = st.columns(2)
        with left:
            show_figure(figures.sentence_map(embeddings.project(vectors, "pca", 2), sentences, scores, tr("emb_sentence_map")),
                        "sentence_map", key="sentence_map")
        with right:
            show_figure(figures.matrix_heatmap(vectors @ vectors.T, [s[:20] for s in sentences], tr("emb_sentence_similarity"),
                                               tr("emb_sentence"), tr("emb_sentence"), symmetric=False, colorscale="Viridis"),
                        "sentence_similarity", pd.DataFrame(vectors @ vectors.T, index=sentences, columns=sentences).reset_index(),
                        key="sentence_similarity")
        st.caption(tr("emb_search_explain"))
    elif len(sentences) < 2:
        st.info(tr("emb_need_sentences"))
