"""Tokenization views: the course book's first tokenizer, six tokenizers side by side, the pipeline step by step, BPE learning live, what Korean costs."""

import json
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st

from explorer import figures, models, tokenize
from explorer.tokenize import KINDS, MAX_CORPUS_BYTES, MAX_TEXT_CHARS

from pages.common import as_bool, bounded, lang, show_figure, tr, translated, url_state
from explorer.labels import readable_bytes, visible

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLES = json.loads((ASSETS / "samples.json").read_text(encoding="utf-8"))
PARAMS = ("wtext", "wnew", "ttext", "tks", "special", "merges", "bstep")
SHOWN_WORDS = 40  # of a long sentence, the code shows this many words
CURVE_POINTS = 60


@st.cache_data(show_spinner=False, max_entries=256)
def _tokenized(kind: str, text: str, special: bool) -> tokenize.Tokenization:
    return tokenize.tokenize_with(kind, text, special)


@st.cache_data(show_spinner=False, max_entries=8)
def _trained(corpus: str, merges: int) -> tokenize.TrainedBPE:
    return tokenize.train_bpe(corpus, merges)


@st.cache_data(show_spinner=False)
def _costs() -> pd.DataFrame:
    korean = " ".join(pair["ko"] for pair in SAMPLES["parallel"])
    english = " ".join(pair["en"] for pair in SAMPLES["parallel"])
    ko, en = tokenize.token_counts(korean), tokenize.token_counts(english)
    return pd.DataFrame({"tokenizer": list(KINDS), "korean": [ko[k] for k in KINDS], "english": [en[k] for k in KINDS]})


def _kinds(raw: str) -> list[str]:
    return [kind for kind in raw.split(",") if kind in KINDS]


def _load_sample() -> None:
    chosen = st.session_state.get("sample_choice")
    if chosen is not None:
        st.session_state["ttext"] = SAMPLES["samples"][chosen]["text"]


def _stats_line(result: tokenize.Tokenization) -> str:
    vocab = f"{result.vocab_size:,}" if result.vocab_size else "—"
    parts = [tr("tok_stats", count=result.count, chars=result.chars_per_token, bytes=result.bytes_per_token, vocab=vocab)]
    if result.unknown:
        parts.append(tr("tok_unknown", n=result.unknown))
    parts.append(tr("tok_exact") if result.exact else
                 tr("tok_not_exact", reasons=", ".join(tr(f"lossy_{reason}") for reason in result.lossy)))
    return " · ".join(parts)


def _show_row(kind: str, title: str, result: tokenize.Tokenization) -> None:
    st.markdown(f"**{title}**")
    st.caption(tr(f"tok_about_{kind}"))
    st.html(figures.token_row_html(result.text, result.tokens, href=_embedding_link(kind)))
    st.caption(_stats_line(result))
    if not result.exact:
        with st.expander(tr("tok_decoded")):
            st.code(result.decoded, language=None, wrap_lines=True)


def _embedding_link(kind: str):
    """Chips of a bundled model's tokenizer open that token on the embeddings page (its neighbours, its place on the map)."""
    model = tokenize.BUNDLED_KINDS.get(kind)
    if model is None:
        return None
    return lambda token: None if token.special or token.piece.startswith(("0x", "⟨")) else \
        f"./embeddings?lang={lang()}&model={model}&word={quote(token.piece.strip())}"


def _rows_table(results: dict[str, tokenize.Tokenization]) -> pd.DataFrame:
    return pd.DataFrame([{"tokenizer": kind, "index": i, "token": token.piece, "id": token.id, "start": token.start,
                          "end": token.end, "bytes": token.raw.hex(" "), "special": token.special,
                          "unknown": token.unknown, "tag": token.tag}
                         for kind, result in results.items() for i, token in enumerate(result.tokens)])



def _shown(items: list) -> str:
    return repr(items[:SHOWN_WORDS])[:-1] + (", …]" if len(items) > SHOWN_WORDS else "]")


def first_tokenizer() -> None:
    """The course book's first tokenizer on the learner's sentence: split on spaces, the two dictionaries, the ids;
    then another sentence read with the same dictionary, its unseen words reported."""
    st.subheader(tr("first_title"))
    st.write(tr("first_intro"))
    book, other_default = SAMPLES["first_tokenizer"][lang()]
    text = st.text_input(tr("first_text"), key=url_state("wtext", book))
    if len(text) > MAX_TEXT_CHARS:
        st.warning(tr("tok_too_long", limit=MAX_TEXT_CHARS))
    if not text.strip():
        st.warning(tr("error_empty_text"))
        return
    found = tokenize.word_dictionary(text)
    st.code("\n".join([f"input_text = {text[:400]!r}", "input_text_list = input_text.split()",
                       f"# {_shown(found.words)}",
                       "str2idx = {word: idx for idx, word in enumerate(dict.fromkeys(input_text_list))}",
                       "idx2str = {idx: word for word, idx in str2idx.items()}",
                       "input_ids = [str2idx[word] for word in input_text_list]", f"# {_shown(found.input_ids)}"]),
            language="python", wrap_lines=True)
    left, right = st.columns(2)
    table = pd.DataFrame({tr("tok_word"): list(found.str2idx), "id": list(found.str2idx.values())})
    left.caption(f"str2idx · {tr('tok_word_to_id')} · {tr('tok_vocab_tables', n=len(table))}")
    left.dataframe(table, hide_index=True, height=min(400, 38 + 35 * len(table)))
    right.caption(f"idx2str · {tr('tok_id_to_word')}")
    right.dataframe(table[["id", tr("tok_word")]], hide_index=True, height=min(400, 38 + 35 * len(table)))
    st.caption(tr("first_round_trip", text=" ".join(found.idx2str[i] for i in found.input_ids[:SHOWN_WORDS])))
    other = st.text_input(tr("first_other"), key=url_state("wnew", other_default))
    ids = found.encode(other)
    with st.container(key="first_unseen"):
        st.code(f"input_ids = {_shown(['?' if i is None else i for i in ids])}", language="python", wrap_lines=True)
        unseen = list(dict.fromkeys(word for word, i in zip(other.split(), ids) if i is None))
        if unseen:
            st.warning(tr("first_unseen", n=len(unseen), words=", ".join(unseen[:10]) + (" …" if len(unseen) > 10 else "")))
        elif other.strip():
            st.info(tr("first_all_known"))
    st.write(tr("first_why_subwords"))


def side_by_side(loaded) -> str | None:
    """The text, chosen tokenizers' tokens as chips, their statistics; returns the text (None: nothing to show)."""
    st.subheader(tr("tok_side_by_side"))
    st.selectbox(tr("tok_sample"), range(len(SAMPLES["samples"])), index=None, key="sample_choice",
                 placeholder=tr("tok_sample_placeholder"), on_change=_load_sample,
                 format_func=lambda i, language=lang(): SAMPLES["samples"][i]["label"][language])
    text = st.text_area(tr("tok_text"), key=url_state("ttext", SAMPLES["samples"][2]["text"]), height=110)
    hub_model = loaded is not None and loaded.info.key not in models.BUNDLED
    options = [*KINDS, "hub"] if hub_model else list(KINDS)
    kinds = st.multiselect(tr("tok_shown"), options, key=url_state("tks", list(KINDS), _kinds), placeholder=tr("tok_shown_placeholder"),
                           format_func=translated("tok_kind_", model=loaded.info.key if hub_model else ""))
    special = st.toggle(tr("tok_special"), key=url_state("special", False, as_bool))
    if len(text) > MAX_TEXT_CHARS:
        st.warning(tr("tok_too_long", limit=MAX_TEXT_CHARS))
    if not text.strip():
        st.warning(tr("error_empty_text"))
        return None
    results = {}
    for kind in kinds:
        if kind == "hub":
            result = tokenize.hub_tokenization(loaded, text, special)
        else:
            result = _tokenized(kind, text, special)
        results[kind] = result
        _show_row(kind, tr(f"tok_kind_{kind}", model=loaded.info.key if hub_model else ""), result)
    if results:
        st.download_button(tr("tok_csv"), lambda: _rows_table(results).to_csv(index=False).encode("utf-8-sig"), "tokens.csv",
                           "text/csv", key="tokens_csv")
    return text


def pipeline(loaded, text: str) -> None:
    """The loaded model's tokenizer, step by step: normalize, pre-tokenize, model, ids."""
    if loaded is None or not hasattr(loaded.tokenizer, "backend_tokenizer"):
        return
    st.subheader(tr("tok_pipeline", model=loaded.info.key))
    st.caption(tr("tok_pipeline_explain"))
    for step in tokenize.pipeline(loaded.tokenizer, text):
        st.markdown(f"**{tr('step_' + step.name)}**" + (f" · `{step.component[:160]}`" if step.component else ""))
        if step.component == "None":
            st.caption(tr("step_none"))
        if step.name == "normalize":
            st.code(step.output[0][:2000], language=None, wrap_lines=True)
            changed = tokenize.normalization_changes(text[:MAX_TEXT_CHARS], step.output[0])
            if len(step.output[0]) != len(text[:MAX_TEXT_CHARS]) or changed:
                st.caption(tr("step_code_points", before=len(text[:MAX_TEXT_CHARS]), after=len(step.output[0])))
                for before, points in changed:
                    st.caption(f"{before} → {' + '.join(points[:8])}")
        elif step.name == "ids":
            st.code(" ".join(step.output[:600]), language=None, wrap_lines=True)
        elif step.tokens is not None:
            st.html(figures.token_row_html(step.tokens.text, step.tokens.tokens))
        else:
            st.html(figures.pieces_html(step.output[:600]))


def bpe_live(text: str) -> None:
    """BPE learned on a corpus, replayed merge by merge on the text."""
    st.subheader(tr("tok_bpe"))
    st.write(tr("tok_bpe_explain"))
    source = st.radio(tr("bpe_corpus"), ["bundled", "paste", "upload"], horizontal=True, key="bpe_source",
                      format_func=translated("bpe_corpus_"))
    corpus = (ASSETS / "corpus_ko_en.txt").read_text(encoding="utf-8")
    if source == "paste":
        pasted = st.text_area(tr("bpe_corpus_paste"), key="bpe_pasted", height=120)
        corpus = pasted if pasted.strip() else corpus
        if not pasted.strip():
            st.info(tr("bpe_corpus_empty"))
    elif source == "upload":
        upload = st.file_uploader(tr("bpe_corpus_upload"), type=["txt", "md", "csv"], key="bpe_upload")
        if upload is not None:
            data = upload.getvalue()
            try:
                corpus = data.decode("utf-8")
            except UnicodeDecodeError:
                st.warning(tr("bpe_not_utf8"))
    if len(corpus.encode("utf-8")) > MAX_CORPUS_BYTES:
        st.warning(tr("bpe_corpus_too_big", limit=MAX_CORPUS_BYTES, size=len(corpus.encode("utf-8"))))
        corpus = corpus.encode("utf-8")[:MAX_CORPUS_BYTES].decode("utf-8", "ignore")
    merges = st.number_input(tr("bpe_merges"), 10, 2000, step=10, key=url_state("merges", 300, bounded(int, 10, 2000)))
    trained = _trained(corpus, int(merges))
    learned = len(trained.merges)
    st.caption(tr("bpe_learned", n=learned, size=trained.corpus_bytes))
    step = st.slider(tr("bpe_step"), 0, max(1, learned), key=url_state("bstep", min(100, learned), bounded(int, 0, learned)))
    at_step = tokenize.bpe_replay(trained, text, step)
    left, right = st.columns(2)
    left.metric(tr("bpe_vocab_size"), f"{256 + min(step, learned):,}", delta=f"+{min(step, learned)}")
    right.metric(tr("bpe_sentence_tokens"), f"{at_step.count:,}",
                 delta=f"{at_step.count - len(text[:MAX_TEXT_CHARS].encode('utf-8')):,}", delta_color="inverse")
    if step:
        a, b = trained.merges[step - 1]
        st.markdown(tr("bpe_merge_made", step=step, left=f"`{visible(readable_bytes(a))}`",
                       right=f"`{visible(readable_bytes(b))}`",
                       merged=f"`{visible(readable_bytes(a + b))}`"))
    else:
        st.caption(tr("bpe_no_merge"))
    st.html(figures.token_row_html(at_step.text, at_step.tokens))
    recent = [{"#": k, tr("bpe_new_token"): visible(readable_bytes(x + y)),
               tr("bpe_merged_from"): f"{visible(readable_bytes(x))} + {visible(readable_bytes(y))}"}
              for k, (x, y) in list(enumerate(trained.merges[:step], start=1))[::-1][:8]]
    if recent:
        st.caption(tr("bpe_recent"))
        st.dataframe(pd.DataFrame(recent), hide_index=True)
    curve_steps = sorted({round(learned * i / CURVE_POINTS) for i in range(CURVE_POINTS + 1)} | {step})
    counts = tokenize.bpe_counts(trained, text, curve_steps)
    show_figure(figures.merges_curve(curve_steps, counts, step, tr("bpe_curve_title"), tr("bpe_step_axis"),
                                     tr("tok_count_axis")),
                "bpe_curve", pd.DataFrame({"merges": curve_steps, "tokens": counts}), key="bpe_curve")


def cost() -> None:
    """What the same content costs in tokens, Korean against English, for every tokenizer."""
    st.subheader(tr("tok_cost"))
    costs = _costs()
    show_figure(figures.token_cost_chart([tr(f"tok_short_{k}") for k in costs.tokenizer], costs.korean.tolist(),
                                         costs.english.tolist(), tr("tok_cost"), tr("korean"), tr("english"),
                                         tr("tok_count_axis")),
                "token_cost", costs.assign(ratio=costs.korean / costs.english), key="cost")
    st.caption(tr("tok_cost_explain", n=len(SAMPLES["parallel"])))
