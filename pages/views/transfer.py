"""Transfer learning views: learning curves of pre-trained features against TF-IDF, and an encoder fine-tune."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from explorer import embeddings, figures, jobs, models, transfer
from pages.common import bounded, compute, current_model, lang, one_of, show_figure, tr, url_state
from pages.views import jobs as jobs_view

PARAMS = ("ftlang", "ftn", "ftep")


KOREAN_DECODER = models.DEFAULT_MODEL["ko"]  # pretrained on Korean: its hidden states show transfer working there


@st.cache_data(show_spinner=False, max_entries=4)
def _curves(_encoder, _decoder, fingerprints: tuple[str, str]) -> list[dict]:
    topics = transfer.load_topics()
    vectors = {"pretrained": {language: embeddings.sentence_embeddings(_encoder, topics.texts[language])
                              for language in transfer.LANGUAGES},
               "decoder": {language: embeddings.decoder_sentence_vectors(_decoder, topics.texts[language])
                           for language in transfer.LANGUAGES}}
    return transfer.learning_curves(vectors, topics)


def _series_name(language: str, method: str) -> str:
    return f"{tr('transfer_' + method, model=KOREAN_DECODER)} · {tr('korean' if language == 'ko' else 'english')}"


def learning_curves() -> None:
    """Accuracy against the number of labelled examples, MiniLM vectors vs TF-IDF, English and Korean."""
    st.subheader(tr("transfer_curves_title"))
    st.write(tr("transfer_curves_intro"))
    encoder, decoder = current_model(models.MINILM), current_model(KOREAN_DECODER)
    if encoder is None or decoder is None:
        return
    rows = compute(_curves, encoder, decoder, (encoder.fingerprint, decoder.fingerprint))
    if rows is None:
        return
    series = {}
    for language in transfer.LANGUAGES:
        for method in transfer.METHODS:
            points = [r for r in rows if r["language"] == language and r["method"] == method]
            series[_series_name(language, method)] = ([p["examples"] for p in points], [p["accuracy"] for p in points])
    dashed = tuple(_series_name("ko", method) for method in transfer.METHODS)
    colours = {_series_name(language, method): figures.CLASS_COLOURS[transfer.METHODS.index(method)]
               for language in transfer.LANGUAGES for method in transfer.METHODS}  # a colour per method, dashes for Korean
    with st.container(key="transfer_curves"):
        show_figure(figures.lines(series, tr("transfer_curves_figure"), tr("transfer_examples_axis"),
                                  tr("transfer_accuracy_axis"), log_x=True, dashed=dashed, colours=colours,
                                  percent=True),
                    "learning_curves", pd.DataFrame(rows), key="curves")
    at = {(r["language"], r["method"]): r["accuracy"] for r in rows if r["per_class"] == 16}
    st.write(tr("transfer_curves_reading", en_pre=at["en", "pretrained"], en_tfidf=at["en", "tfidf"],
                ko_pre=at["ko", "pretrained"], ko_tfidf=at["ko", "tfidf"]))
    st.write(tr("transfer_curves_decoder", model=decoder.info.key, layer=decoder.info.layers // 3,
                ko_decoder=at["ko", "decoder"], en_decoder=at["en", "decoder"]))
    st.caption(tr("transfer_curves_method", test=transfer.TEST_PER_CLASS))


def encoder_fine_tune() -> None:
    """A few epochs of fine-tuning MiniLM on the chosen examples; the sentence map before and after."""
    st.subheader(tr("transfer_finetune_title"))
    st.write(tr("transfer_finetune_intro"))
    loaded = current_model(models.MINILM)
    if loaded is None:
        return
    left, middle, right = st.columns(3)
    language_names = {"en": tr("english"), "ko": tr("korean")}
    language = left.radio(tr("transfer_language"), transfer.LANGUAGES, horizontal=True, format_func=language_names.get,
                          key=url_state("ftlang", "en", one_of(transfer.LANGUAGES)))
    per_class = middle.select_slider(tr("transfer_per_class"), transfer.PER_CLASS, key=url_state("ftn", 8, one_of(transfer.PER_CLASS, int)))
    epochs = right.number_input(tr("transfer_epochs"), 1, transfer.MAX_EPOCHS, step=1, key=url_state("ftep", 4, bounded(int, 1, transfer.MAX_EPOCHS)))

    def work(job: jobs.Job) -> transfer.FineTune:
        return transfer.fine_tune_encoder(loaded, language, int(per_class), int(epochs), job=job)

    jobs_view.start_button(tr("training_start"), "encoder", transfer.fine_tune_steps(int(per_class), int(epochs)), work,
                           type="primary")
    jobs_view.panel("encoder", lambda job: st.session_state.__setitem__("encoder_result", job.result))
    result: transfer.FineTune | None = st.session_state.get("encoder_result")
    if result is not None:
        _fine_tune_result(result)


def _fine_tune_result(result: transfer.FineTune) -> None:
    topics = transfer.load_topics()
    names = {index: topics.names[name][lang()] for index, name in enumerate(topics.classes)}
    texts = topics.texts[result.language]
    labelled = np.isin(np.arange(len(texts)), result.train)
    st.caption(tr("transfer_finetune_done", language=tr("korean" if result.language == "ko" else "english"),
                  per_class=result.per_class, epochs=result.epochs))
    first, second = st.columns(2)
    first.metric(tr("transfer_accuracy_before"), f"{result.accuracy_before:.0%}")
    second.metric(tr("transfer_accuracy_after"), f"{result.accuracy_after:.0%}",
                  f"{(result.accuracy_after - result.accuracy_before) * 100:+.0f}%p")
    before_column, after_column = st.columns(2)
    for column, vectors, title, key in ((before_column, result.before, "transfer_map_before", "map_before"),
                                        (after_column, result.after, "transfer_map_after", "map_after")):
        points = embeddings.pca(vectors, 2)  # (n, 2)
        with column:
            show_figure(figures.class_map(points, topics.labels, names, texts, labelled, tr(title),
                                          tr("transfer_labelled")), key,
                        pd.DataFrame({"sentence": texts, "topic": [names[i] for i in topics.labels],
                                      "labelled": labelled, "x": points[:, 0], "y": points[:, 1]}), key=key)
    st.caption(tr("transfer_map_explain"))
