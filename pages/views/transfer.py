"""Transfer learning views: learning curves of pre-trained features against TF-IDF, and an encoder fine-tune."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from explorer import distill, embeddings, figures, jobs, memory, models, transfer
from pages.common import bounded, compute, current_model, lang, one_of, show_figure, tr, url_state
from pages.views import jobs as jobs_view

PARAMS = ("ftlang", "ftn", "ftep", "kdlang", "kdtemp", "kdsent")


KOREAN_DECODER = models.DEFAULT_MODEL["ko"]  # pretrained on Korean: its hidden states show transfer working there


@st.cache_data(show_spinner=False, max_entries=4)
def _decoder_vectors(_decoder, fingerprint: str, language: str) -> np.ndarray:
    """(n, d) the decoder's sentence vectors of the topic set: the learning curves' and the distillation teacher's."""
    return embeddings.decoder_sentence_vectors(_decoder, transfer.load_topics().texts[language])


@st.cache_data(show_spinner=False, max_entries=4)
def _curves(_encoder, _decoder, fingerprints: tuple[str, str]) -> list[dict]:
    topics = transfer.load_topics()
    vectors = {"pretrained": {language: embeddings.sentence_embeddings(_encoder, topics.texts[language])
                              for language in transfer.LANGUAGES},
               "decoder": {language: _decoder_vectors(_decoder, fingerprints[1], language)
                           for language in transfer.LANGUAGES}}
    return transfer.learning_curves(vectors, topics)


def warm_up() -> None:
    """The learning curves, the same for every visitor and language (MiniLM's and the Korean decoder's vectors of the
    topic set, then the classifiers: ~15 s on 2 cores, the page's first view before it was done at start)."""
    with memory.BUDGET.run():
        encoder, decoder = models.shared(models.MINILM), models.shared(KOREAN_DECODER)
        _curves(encoder, decoder, (encoder.fingerprint, decoder.fingerprint))


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


# ---------------------------------------------------------------- distillation

@st.cache_data(show_spinner=False, max_entries=4)
def _teacher(_decoder, fingerprint: str, language: str) -> distill.Teacher:
    return distill.teacher(_decoder, language, _decoder_vectors(_decoder, fingerprint, language))


def distillation() -> None:
    """The teacher's distribution at T = 1 and at T; students trained from the hard labels and from it."""
    st.subheader(tr("distill_title"))
    st.write(tr("distill_intro", model=KOREAN_DECODER))
    decoder = current_model(KOREAN_DECODER)
    if decoder is None:
        return
    left, right = st.columns(2)
    language_names = {"en": tr("english"), "ko": tr("korean")}
    language = left.radio(tr("transfer_language"), transfer.LANGUAGES, horizontal=True, format_func=language_names.get,
                          key=url_state("kdlang", lang(), one_of(transfer.LANGUAGES)))
    temperature = right.select_slider(tr("distill_temperature"), distill.TEMPERATURES, help=tr("distill_temperature_help"),
                                      key=url_state("kdtemp", 4, one_of(distill.TEMPERATURES, int)))
    teacher = compute(_teacher, decoder, decoder.fingerprint, language)
    if teacher is None:
        return
    topics = transfer.load_topics()
    texts, names = topics.texts[language], [topics.names[c][lang()] for c in topics.classes]
    shown = [int(i) for i in teacher.pool[::8]]  # a few of its training sentences, every topic
    picked = st.selectbox(tr("distill_sentence"), range(len(shown)), format_func=lambda i: texts[shown[i]],
                          key=url_state("kdsent", 0, bounded(int, 0, len(shown) - 1)))
    index = shown[min(int(picked), len(shown) - 1)]
    cold, warm = distill.softened(teacher.logits[index], 1), distill.softened(teacher.logits[index], temperature)
    with st.container(key="distill_teacher"):
        show_figure(figures.before_after_bars(names, cold.tolist(), warm.tolist(), tr("distill_teacher_figure"),
                                              "T = 1", f"T = {temperature}", tr("probability"), log_y=True,
                                              tokens=False, percent=True),
                    "distillation_teacher", pd.DataFrame({"topic": names, "T=1": cold, f"T={temperature}": warm}),
                    key="distill_teacher_bars")
    runner_up = int(np.argsort(cold)[-2])
    st.caption(tr("distill_dark", topic=names[runner_up], cold=cold[runner_up], warm=warm[runner_up],
                  temperature=temperature, truth=names[topics.labels[index]]))

    def work(job: jobs.Job) -> distill.Curves:
        return distill.curves(teacher, temperature, job)

    inputs = (decoder.fingerprint, language, temperature)
    jobs_view.start_button(tr("distill_start"), "distill", distill.trainings(), work, inputs, type="primary")
    jobs_view.panel("distill", lambda job: st.session_state.__setitem__("distill_result", (job.inputs, job.result)))
    kept = st.session_state.get("distill_result")
    if kept is not None and kept[0] == inputs:  # the students of these settings, not of an earlier language or T
        _distillation_result(kept[1], decoder)


def _distillation_result(result: distill.Curves, decoder) -> None:
    examples = [n * len(transfer.load_topics().classes) for n in result.per_class]
    hard, soft = tr("distill_hard"), tr("distill_soft", temperature=result.temperature)
    teacher = tr("distill_teacher", model=decoder.info.key)
    st.caption(tr("distill_done", language=tr("korean" if result.language == "ko" else "english"),
                  temperature=result.temperature, seconds=result.seconds))
    with st.container(key="distill_curves"):
        show_figure(figures.lines({hard: (examples, result.hard), soft: (examples, result.soft),
                                   teacher: (examples, [result.teacher.accuracy] * len(examples))},
                                  tr("distill_curves_figure"), tr("transfer_examples_axis"),
                                  tr("transfer_accuracy_axis"), log_x=True, dashed=(teacher,), percent=True),
                    "distillation_curves", pd.DataFrame({"examples": examples, "hard": result.hard,
                                                         "soft": result.soft}), key="distill_curves_chart")
    best = int(np.argmax(np.array(result.soft) - np.array(result.hard)))
    st.write(tr("distill_reading", hard=result.hard[-1], soft=result.soft[-1], examples=examples[-1],
                gain=(result.soft[best] - result.hard[best]) * 100, at=examples[best]))
    speed = result.teacher.seconds_per_sentence / result.student_seconds_per_sentence
    with st.container(key="distill_sizes"):
        st.dataframe(pd.DataFrame({
            "": [teacher, tr("distill_student")],
            tr("distill_parameters"): [f"{result.teacher.parameters:,}", f"{result.student_parameters:,}"],
            tr("distill_ms"): [f"{result.teacher.seconds_per_sentence * 1000:,.2f}",
                               f"{result.student_seconds_per_sentence * 1000:,.3f}"],
            tr("transfer_accuracy_axis"): [f"{result.teacher.accuracy:.0%}", f"{result.soft[-1]:.0%}"]}),
            hide_index=True, width="stretch")
    st.caption(tr("distill_sizes_explain", ratio=result.teacher.parameters / result.student_parameters, speed=speed))
