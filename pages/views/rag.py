"""RAG views: documents and chunks, retrieval two ways and fused, the prompt, the streamed answer, what it drew on,
and accuracy on the built-in questions."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext

import numpy as np
import pandas as pd
import streamlit as st

from explorer import figures, jobs, memory, models, rag
from explorer.i18n import t
from explorer.kept import Kept
from explorer.models import LoadedModel
from pages.common import bounded, compute, lang, one_of, show_figure, tr, translated, url_state
from pages.views import jobs as jobs_view

PARAMS = ("csize", "coverlap", "q", "k", "method")
CHUNK_SIZE, CHUNK_OVERLAP = 400, 50  # characters

KS = (1, 2, 3, 4, 5)
# MiniLM's vectors were trained on English: on the 6 Korean built-in questions at k = 1, Gemma answers 5 from BM25's
# chunk, 3 from the fused one and 2 from MiniLM's (bench/bench_gemma.py); in English every method gives 8 of 8.
DEFAULT_METHOD = {"ko": "bm25", "en": "fused"}
QUESTIONS = rag.bundled_questions()  # the built-in questions with known answers
SHOWN_CHUNKS = 60
RANKED = 5


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@st.cache_resource(show_spinner=False, max_entries=8)
def _index(_encoder, fingerprint: str, digest: str, text: str, size: int, overlap: int) -> rag.Index:
    return rag.build_index(_encoder, rag.chunk(rag.paragraphs(text), size, overlap))


def _documents_index(encoder: LoadedModel, text: str, size: int, overlap: int) -> rag.Index:
    return _index(encoder, encoder.fingerprint, _digest(text), text, size, min(overlap, size // 2 - 1))


def documents(encoder: LoadedModel, decoder: LoadedModel) -> rag.Index | None:
    """The documents box (one paragraph per document, or an uploaded file), chunking controls, chunks and costs."""
    st.subheader(tr("rag_documents_title"))
    if "rag_documents" not in st.session_state:
        st.session_state["rag_documents"] = rag.bundled_text()
    upload = st.file_uploader(tr("rag_upload"), type=["txt", "md"], key="rag_upload")
    if upload is not None and st.session_state.get("rag_uploaded") != upload.file_id:
        try:
            st.session_state["rag_documents"] = upload.getvalue().decode("utf-8")
            st.session_state["rag_uploaded"] = upload.file_id
        except UnicodeDecodeError:
            st.error(tr("bpe_not_utf8"))
    text = st.text_area(tr("rag_documents"), key="rag_documents", height=220, help=tr("rag_documents_help"))
    left, right = st.columns(2)
    size = left.slider(tr("rag_chunk_size"), 100, 1000, step=50, key=url_state("csize", CHUNK_SIZE, bounded(int, 100, 1000)))
    overlap = right.slider(tr("rag_overlap"), 0, 200, step=10, key=url_state("coverlap", CHUNK_OVERLAP, bounded(int, 0, 200)))
    index = compute(_documents_index, encoder, text, size, overlap)
    if index is None:
        return None
    costs = rag.token_counts(decoder.tokenizer, [c.text for c in index.chunks])
    st.caption(tr("rag_chunks_summary", documents=len({c.document for c in index.chunks}), chunks=len(index.chunks),
                  tokens=sum(costs), model=decoder.info.key))
    table = pd.DataFrame({tr("rag_document"): [c.document + 1 for c in index.chunks],
                          tr("rag_chunk"): [c.text for c in index.chunks], tr("rag_tokens"): costs})
    with st.expander(tr("rag_show_chunks", n=min(SHOWN_CHUNKS, len(table))), expanded=False):
        st.dataframe(table.head(SHOWN_CHUNKS), hide_index=True, width="stretch")
        st.download_button(tr("download_csv"), lambda: table.to_csv(index=False).encode("utf-8-sig"), "rag_chunks.csv",
                           "text/csv", key="rag_chunks_csv")
    return index


def _ranked(index: rag.Index, retrieval: rag.Retrieval, method: str) -> pd.DataFrame:
    scores = retrieval.scores(method)
    top = retrieval.top(method, RANKED)
    return pd.DataFrame({tr("rag_rank"): range(1, len(top) + 1),
                         tr("rag_chunk"): [index.chunks[i].text[:120] for i in top],
                         tr("rag_score"): [round(float(scores[i]), 4) for i in top]})


def retrieval(index: rag.Index, encoder: LoadedModel) -> tuple[rag.Retrieval, list[int], str] | None:
    """The question, both rankings side by side, their fusion, and the k passages chosen."""
    st.subheader(tr("rag_retrieval_title"))
    question = st.text_input(tr("rag_question"), key=url_state("q", tr("rag_sample_question")))
    st.session_state["rag_question"] = question  # the stable key browser tests and lessons look for
    left, right = st.columns(2)
    k = left.select_slider(tr("rag_k"), KS, key=url_state("k", 1, one_of(KS, int)), help=tr("rag_k_help"))
    method = right.radio(tr("rag_method"), rag.METHODS, horizontal=True, format_func=translated("rag_method_"),
                         key=url_state("method", DEFAULT_METHOD[lang()], one_of(rag.METHODS)))
    found = compute(rag.retrieve, index, encoder, question)
    if found is None:
        return None
    st.caption(tr("rag_matched", words=", ".join(found.matched) or "—"))
    columns = st.columns(3)
    names = translated("rag_method_")
    for column, name in zip(columns, rag.METHODS):
        with column:
            st.markdown(f"**{names(name)}**")
            st.dataframe(_ranked(index, found, name), hide_index=True, width="stretch", key=f"rag_rank_{name}")
    st.caption(tr("rag_fusion_explain", k=rag.RRF_K))
    chosen = found.top(method, int(k))
    if not chosen:
        st.warning(tr("rag_no_match"))
    return found, chosen, method


def prompt_view(decoder: LoadedModel, question: str, passages: list[str]) -> rag.Prompt | None:
    st.subheader(tr("rag_prompt_title"))
    built = compute(rag.build_prompt, decoder, question, passages)
    if built is None:
        return None
    st.metric(tr("rag_prompt_tokens"), f"{len(built.ids):,} / {rag.CONTEXT_BUDGET:,}")
    if len(built.ids) > rag.CONTEXT_BUDGET:
        st.error(tr("rag_over_budget", tokens=len(built.ids), budget=rag.CONTEXT_BUDGET))
        return None
    with st.expander(tr("rag_prompt_tokens_show"), expanded=len(built.ids) < 200):
        st.html(figures.token_row_html(built.text, built.tokens.tokens))
    return built


ANSWERS = Kept(64)  # (model, prompt ids) -> greedy answer and its tokens' probabilities, for every session


def _answer_key(decoder: LoadedModel, prompt: rag.Prompt) -> tuple:
    return decoder.fingerprint, tuple(prompt.ids)


def _streamed(decoder: LoadedModel, prompt: rag.Prompt, key: str) -> tuple[list[int], float | None]:
    """The answer's ids and the model's confidence in them: written token by token the first time, then kept (greedy
    decoding gives every session the same answer, so a lesson rehearsed before class shows it at once)."""
    cache_key = _answer_key(decoder, prompt)
    kept = ANSWERS.get(cache_key)
    if kept is not None:
        st.html(figures.plain_text_html("", rag.answer_text(decoder, kept[0])))
        return kept[0], rag.confidence(decoder, *kept)
    ids: list[int] = []
    chances: list[float] = []

    def pieces():
        shown = ""
        for token_id in rag.stream_answer(decoder, prompt, chances=chances):
            ids.append(token_id)
            text = rag.answer_text(decoder, ids)
            if not text.endswith("\ufffd") and len(text) > len(shown):  # a Hangul syllable waits for its last byte
                yield text[len(shown):]
                shown = text

    with st.container(key=key):
        st.write_stream(pieces())
    ANSWERS.put(cache_key, (ids, chances))
    return ids, rag.confidence(decoder, ids, chances)


def _answer_kept(decoder: LoadedModel, prompt: rag.Prompt) -> list[int]:
    """The answer computed without drawing it, into the same store (the warm-up's)."""
    cache_key = _answer_key(decoder, prompt)
    if cache_key not in ANSWERS:
        chances: list[float] = []
        ids = list(rag.stream_answer(decoder, prompt, chances=chances))
        ANSWERS.put(cache_key, (ids, chances))
    return ANSWERS.get(cache_key)[0]


def warm_up(language: str = "ko") -> None:
    """The page's first view for a new visitor in `language` (the bundled documents, the sample question, the default
    k and method, the language's default decoder), computed into the page's own stores: the index, both answers and
    what the answer drew on. The same for every visitor, so the app does it in the background at start."""
    with memory.BUDGET.run():
        encoder, decoder = models.shared(models.MINILM), models.shared(models.DEFAULT_MODEL[language])
        index = _documents_index(encoder, rag.bundled_text(), CHUNK_SIZE, CHUNK_OVERLAP)
        question = t("rag_sample_question", language)
        passages = [index.chunks[i].text for i in rag.retrieve(index, encoder, question).top(DEFAULT_METHOD[language], KS[0])]
        prompt = rag.build_prompt(decoder, question, passages)
        answer_ids = _answer_kept(decoder, prompt)
        _answer_kept(decoder, rag.build_prompt(decoder, question, []))
        if answer_ids:
            _attribution(decoder, decoder.fingerprint, question, tuple(passages), tuple(answer_ids))


def _confidence(value: float | None) -> None:
    if value is not None:
        st.metric(tr("rag_confidence"), f"{value:.0%}", help=tr("rag_confidence_help"))


def answer(decoder: LoadedModel, question: str, prompt: rag.Prompt) -> list[int]:
    """The answer with the passages (streamed) beside the answer to the bare question."""
    st.subheader(tr("rag_answer_title"))
    if any("\uac00" <= ch <= "\ud7a3" for ch in question) and models.cannot_write_korean(decoder.info.key):
        st.info(tr("rag_korean_model", model=decoder.info.key, korean=models.DEFAULT_MODEL["ko"]))
    with_column, without_column = st.columns(2)
    with with_column, st.container(key="rag_answer"):
        st.markdown(f"**{tr('rag_with_passages')}**")
        ids, sure = _streamed(decoder, prompt, "rag_answer_stream")
        _confidence(sure)
    with without_column, st.container(key="rag_bare_answer"):
        st.markdown(f"**{tr('rag_without_passages')}**")
        bare = rag.build_prompt(decoder, question, [])
        _, bare_sure = _streamed(decoder, bare, "rag_bare_stream")
        _confidence(bare_sure)
    st.caption(tr("rag_answer_explain"))
    st.write(tr("rag_confidence_explain"))
    return ids


@st.cache_data(show_spinner=False, max_entries=16)
def _attribution(_decoder, fingerprint: str, question: str, passages: tuple[str, ...], answer_ids: tuple[int, ...]):
    return rag.attribute(_decoder, question, list(passages), list(answer_ids))


def drew_on(decoder: LoadedModel, question: str, prompt: rag.Prompt, passages: list[str], answer_ids: list[int]) -> None:
    """For each passage: the attention the answer paid it and how much less likely the answer is without it."""
    st.subheader(tr("rag_drew_title"))
    if not passages or not answer_ids:
        st.info(tr("rag_drew_nothing"))
        return
    found = compute(_attribution, decoder, decoder.fingerprint, question, tuple(passages), tuple(answer_ids))
    if found is None:
        return
    names = [f"#{i + 1}" for i in range(len(passages))]
    data = pd.DataFrame({"passage": names, "text": passages, "attention": found.attention, "log_prob_drop": found.drop})
    left, right = st.columns(2)
    with left:
        show_figure(figures.before_after_bars(names, list(found.attention), None, tr("rag_attention_title"),
                                              tr("rag_attention_axis"), "", tr("rag_attention_axis")),
                    "rag_attention", data, key="rag_attention")
    with right:
        show_figure(figures.before_after_bars(names, list(found.drop), None, tr("rag_drop_title"),
                                              tr("rag_drop_axis"), "", tr("rag_drop_axis")),
                    "rag_drop", data, key="rag_drop")
    for number, (start, end) in enumerate(prompt.passage_spans):
        pieces = _passage_pieces(prompt, start, end, found.token_attention[number])
        st.html(f"<b>#{number + 1}</b> " + figures.weighted_text_html(pieces))
    st.caption(tr("rag_drew_explain", layers=rag.ATTENTION_LAYERS, total=decoder.info.layers))


def _passage_pieces(prompt: rag.Prompt, start: int, end: int, weights: np.ndarray) -> list[tuple[str, float]]:
    """The passage's characters with the attention its tokens received; tokens sharing characters (a Hangul
    syllable's bytes) add up under that one piece of text."""
    pieces: list[list] = []  # [text start, text end, weight]
    for token, weight in zip(prompt.tokens.tokens[start:end], weights):
        if pieces and token.start < pieces[-1][1]:
            pieces[-1][1] = max(pieces[-1][1], token.end)
            pieces[-1][2] += float(weight)
        else:
            pieces.append([token.start, token.end, float(weight)])
    return [(prompt.text[a:b], w) for a, b, w in pieces]


STAGES = ("documents", "retrieval", "prompt", "answer", "drew_on")


def pipeline(encoder: LoadedModel, decoder: LoadedModel, shown: tuple[str, ...] = STAGES) -> None:
    """Documents and chunks, retrieval, the prompt, the answer and what it drew on, each step feeding the next.

    A lesson step shows only the stages it is about (`shown`, consecutive): the stages before them still run, in a
    second tab, and the stages after them are not drawn."""
    earlier = STAGES[:STAGES.index(shown[0])]
    now_tab, earlier_tab = st.tabs([tr("rag_this_step"), tr("rag_earlier_steps")]) if earlier else (None, None)
    last = STAGES.index(shown[-1])

    def runs(stage: str) -> bool:
        return STAGES.index(stage) <= last

    def at(stage: str):
        return (earlier_tab if stage in earlier else now_tab) or nullcontext()

    with at("documents"):
        index = documents(encoder, decoder)
    if index is None or not runs("retrieval"):
        return
    with at("retrieval"):
        found = retrieval(index, encoder)
    if found is None or not runs("prompt"):
        return
    retrieved, chosen, _ = found
    passages = [index.chunks[i].text for i in chosen]
    with at("prompt"):
        prompt = prompt_view(decoder, retrieved.question, passages)
    if prompt is None or not runs("answer"):
        return
    with at("answer"):
        answer_ids = answer(decoder, retrieved.question, prompt)
    if runs("drew_on"):
        with at("drew_on"):
            drew_on(decoder, retrieved.question, prompt, passages, answer_ids)


# ---------------------------------------------------------------- accuracy on the built-in questions

EVALUATIONS = Kept(8)  # decoder and encoder fingerprints -> rows: measured once per process, shown to everyone


def accuracy(encoder: LoadedModel, decoder: LoadedModel) -> None:
    st.subheader(tr("rag_accuracy_title"))
    st.write(tr("rag_accuracy_intro", n=len(QUESTIONS)))
    key = (decoder.fingerprint, encoder.fingerprint)
    rows = EVALUATIONS.get(key)
    if rows is None:
        questions = QUESTIONS

        def work(job: jobs.Job) -> list[dict]:
            index = rag.build_index(encoder, rag.chunk(rag.paragraphs(rag.bundled_text())))
            return rag.evaluate(decoder, encoder, index, questions, job=job)

        steps = len(questions) * len(rag.METHODS) * 3
        jobs_view.start_button(tr("rag_measure"), "rag_eval", steps, work, key)
        jobs_view.panel("rag_eval", lambda job: EVALUATIONS.put(job.inputs, job.result))  # the models it ran on
        rows = EVALUATIONS.get(key)
        if rows is None:
            return
    table = pd.DataFrame(rag.accuracy_table(rows))
    for language in ("en", "ko"):
        part = table[table["language"] == language]
        series = {tr(f"rag_method_{m}"): (list(part[part["method"] == m]["k"]), list(part[part["method"] == m]["accuracy"]))
                  for m in rag.METHODS}
        title = tr("rag_accuracy_figure", language=tr("english" if language == "en" else "korean"))
        show_figure(figures.lines(series, title, tr("rag_k"), tr("transfer_accuracy_axis"), percent=True, height=360),
                    f"rag_accuracy_{language}", pd.DataFrame(rows), key=f"rag_accuracy_{language}")
    st.caption(tr("rag_accuracy_explain"))
