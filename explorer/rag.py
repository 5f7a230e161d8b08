"""Retrieval-augmented generation, step by step: chunks, two retrievers and their fusion, the prompt, the answer,
and what the answer drew on.

BM25 (bm25s) runs over Kiwi morphemes, so Korean particles and endings do not hide the stems; dense retrieval uses
MiniLM's sentence vectors (English-only pre-training: weak in Korean, and the page says so). Reciprocal-rank
fusion joins the two rankings. The answer comes from the decoder with the passages in its chat prompt.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from explorer import embeddings, prediction, process, tokenize
from explorer.activations import CaptureError
from explorer.adapting import answer_stop_ids, chat_ids, completion_prompt, sequence_log_probs
from explorer.capture_attention import CaptureRequest, capturing
from explorer.models import LoadedModel, device_of


def _without_numba(name: str):
    """Import `name` as if numba were not installed (unless it is already imported). bm25s imports numba whenever
    it can (umap-learn installs it) for a backend this app does not use: the scores of a few hundred passages take
    numpy under a millisecond, and numba's import alone holds ~50 MB of the shared process (measured)."""
    if "numba" in sys.modules:
        return importlib.import_module(name)
    sys.modules["numba"] = None  # `import numba` raises ImportError meanwhile, which bm25s expects
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules["numba"]


bm25s = _without_numba("bm25s")
from bm25s.stopwords import STOPWORDS_EN  # noqa: E402

DOCUMENTS = Path(__file__).resolve().parent.parent / "assets" / "rag" / "documents.json"
MAX_DOCUMENT_CHARS = 200_000  # more is refused with a message (the text stays in its box)
MAX_CHUNKS = 2_000
MAX_QUESTION_CHARS = 1_000
RRF_K = 60  # the constant of Cormack et al. (2009): 1 / (60 + rank)
METHODS = ("bm25", "dense", "fused")
CONTENT_TAGS = ("NN", "VV", "VA", "XR", "SL", "SN", "SH", "MAG")  # morphemes that carry meaning; no particles/endings
ANSWER_TOKENS = 30
CONTEXT_BUDGET = 1_024  # prompt tokens: more is refused with a message (fewer passages or smaller chunks)
ATTENTION_LAYERS = 8  # layers whose attention is averaged for attribution (evenly spaced): bounds the memory
# Measured on the 8 English built-in questions with their passage (k = 1): this wording 8/8; "Use the passage to
# answer the question. Passage: … Question: …" 7/8, and the passage then the bare question 7/8.
INSTRUCTION = "Read this text and answer the question."
INSTRUCTION_MANY = "Read these texts and answer the question."


class RagError(CaptureError):
    """A refused input (no documents, a huge paste…): `kind` names the message, as for captures."""


@lru_cache(maxsize=1)
def bundled() -> dict:
    return json.loads(DOCUMENTS.read_text(encoding="utf-8"))


def bundled_text(language: str | None = None) -> str:
    """The bundled passages as the learner's text box holds documents: one paragraph each, blank lines between."""
    return "\n\n".join(p["text"] for p in bundled()["passages"] if language in (None, p["lang"]))


# ---------------------------------------------------------------- documents and chunks

@dataclass(frozen=True)
class Chunk:
    document: int  # which paragraph of the documents it comes from
    start: int  # characters [start, end) of that paragraph
    end: int
    text: str


def paragraphs(text: str) -> list[str]:
    """Each blank-line-separated paragraph is one document."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise RagError("documents_too_long", f"{len(text):,} > {MAX_DOCUMENT_CHARS:,}")
    found = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not found:
        raise RagError("no_documents")
    return found


def chunk(documents: list[str], size: int = 400, overlap: int = 50) -> list[Chunk]:
    """Cut each document into pieces of at most `size` characters, ending at a space where one is near, each
    starting `overlap` characters before the previous one ended."""
    if size < 50 or not 0 <= overlap < size // 2:
        raise RagError("bad_chunking", f"size {size}, overlap {overlap}")
    chunks = []
    for number, document in enumerate(documents):
        start = 0
        while start < len(document):
            end = min(len(document), start + size)
            if end < len(document):
                space = document.rfind(" ", start + size // 2, end)
                end = space if space > 0 else end
            chunks.append(Chunk(number, start, end, document[start:end].strip()))
            if end == len(document):
                break
            start = max(end - overlap, start + 1)
            while 0 < start < end and not document[start - 1].isspace() and overlap:  # begin at a word
                start += 1
        if len(chunks) > MAX_CHUNKS:
            raise RagError("too_many_chunks", f"> {MAX_CHUNKS:,}")
    return [c for c in chunks if c.text]


def token_counts(tokenizer, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []


# ---------------------------------------------------------------- retrieval

def morphemes(text: str) -> list[str]:
    """The words BM25 counts: Kiwi's content morphemes, lower-cased (English words come out whole, tagged SL)."""
    analysed = tokenize.kiwi().tokenize(text)
    return [word for word in (m.form.lower() for m in analysed if m.tag.startswith(CONTENT_TAGS))
            if word not in STOPWORDS_EN]


@dataclass
class Index:
    chunks: list[Chunk]
    words: list[list[str]]  # each chunk's morphemes
    bm25: bm25s.BM25
    vectors: np.ndarray  # (n, d) MiniLM unit sentence vectors


def build_index(encoder: LoadedModel, chunks: list[Chunk]) -> Index:
    words = [morphemes(c.text) for c in chunks]
    retriever = bm25s.BM25(backend="numpy")
    retriever.index([w or [""] for w in words], show_progress=False)
    order = np.argsort([len(c.text) for c in chunks])  # similar lengths batched together: little padding
    vectors = np.empty((len(chunks), encoder.info.hidden_size), dtype=np.float32)
    on_cpu = device_of(encoder.model).type == "cpu"
    # bf16 where the CPU has it natively: 2.8x faster for 300 Korean passages, cosine to float32 >= 0.9999 (measured)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=on_cpu and process.native_bf16()):
        vectors[order] = embeddings.sentence_embeddings(encoder, [chunks[i].text for i in order], batch=64)
    return Index(chunks, words, retriever, vectors)


def bm25_scores(index: Index, question: str) -> np.ndarray:
    """(n,) BM25 score of every chunk; words the documents never use count for nothing."""
    known = [w for w in morphemes(question) if w in index.bm25.vocab_dict]
    return index.bm25.get_scores(known).astype(np.float64) if known else np.zeros(len(index.chunks))


def dense_scores(index: Index, encoder: LoadedModel, question: str) -> np.ndarray:
    """(n,) cosine similarity of the question's MiniLM vector to every chunk's."""
    return index.vectors @ embeddings.sentence_embeddings(encoder, [question])[0]


def ranks(scores: np.ndarray) -> np.ndarray:
    """(n,) 1-based rank of each chunk, best first; ties keep document order."""
    order = np.argsort(-scores, kind="stable")
    ranked = np.empty(len(scores), dtype=np.int64)
    ranked[order] = np.arange(1, len(scores) + 1)
    return ranked


def reciprocal_rank_fusion(*rankings: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """(n,) sum over rankings of 1 / (k + rank)."""
    return sum(1.0 / (k + ranking) for ranking in rankings)


@dataclass
class Retrieval:
    question: str
    bm25: np.ndarray  # (n,) scores
    dense: np.ndarray  # (n,)
    fused: np.ndarray  # (n,) RRF of the two rankings
    matched: list[str]  # the question's morphemes the documents contain

    def scores(self, method: str) -> np.ndarray:
        return {"bm25": self.bm25, "dense": self.dense, "fused": self.fused}[method]

    def top(self, method: str, k: int) -> list[int]:
        scores = self.scores(method)
        if method == "bm25":  # a chunk that shares no word with the question is never "retrieved"
            return [int(i) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] > 0]
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def retrieve(index: Index, encoder: LoadedModel, question: str) -> Retrieval:
    question = question.strip()
    if not question:
        raise RagError("empty_question")
    if len(question) > MAX_QUESTION_CHARS:
        raise RagError("question_too_long", f"{len(question):,} > {MAX_QUESTION_CHARS:,}")
    bm25, dense = bm25_scores(index, question), dense_scores(index, encoder, question)
    matched = [w for w in morphemes(question) if w in index.bm25.vocab_dict]
    return Retrieval(question, bm25, dense, reciprocal_rank_fusion(ranks(bm25), ranks(dense)), matched)


# ---------------------------------------------------------------- the prompt and the answer

@dataclass
class Prompt:
    ids: list[int]  # what the model reads: apply_chat_template's own ids, or the completion prompt's
    text: str  # the same, as the template (or the completion prompt) writes it
    passage_spans: list[tuple[int, int]]  # token positions [start, end) of each passage in `ids`
    tokens: tokenize.Tokenization = field(repr=False)  # ids placed on the text, for drawing
    completion: bool = False  # a base model's "Document: … Question: … Answer:" prompt: the answer is one line


def prompt_content(question: str, passages: list[str]) -> str:
    if not passages:
        return question
    if len(passages) == 1:
        return f"{INSTRUCTION}\n\nText: {passages[0]}\n\nQuestion: {question}\nAnswer briefly."
    listed = "\n\n".join(f"Text {number}: {text}" for number, text in enumerate(passages, start=1))
    return f"{INSTRUCTION_MANY}\n\n{listed}\n\nQuestion: {question}\nAnswer briefly."


def build_prompt(loaded: LoadedModel, question: str, passages: list[str]) -> Prompt:
    """The chat prompt (the model's own template) or, for a base model without one, the completion prompt."""
    tokenizer = loaded.tokenizer
    completion = not getattr(tokenizer, "chat_template", None)
    if completion:
        text = completion_prompt(question, passages)
        ids = list(tokenizer(text)["input_ids"])  # with the tokenizer's own <bos>
        text = tokenizer.decode(ids)  # the same ids written out, special tokens included, as the chat path shows them
    else:
        content = prompt_content(question, passages)
        ids = chat_ids(tokenizer, content)
        text = tokenizer.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                             tokenize=False)
    tokens = tokenize.from_hf(tokenizer, text)
    spans, searched_from = [], 0
    for passage in passages:
        begin = text.index(passage, searched_from)
        searched_from = begin + len(passage)
        inside = [i for i, t in enumerate(tokens.tokens) if t.start < searched_from and t.end > begin]
        spans.append((inside[0], inside[-1] + 1))
    return Prompt(ids, text, spans, tokens, completion)


def stream_answer(loaded: LoadedModel, prompt: Prompt, steps: int = ANSWER_TOKENS, chances: list | None = None):
    """Greedy answer token by token: yields each new id until the end of the turn (for a completion prompt, also at
    the end of the answer's line: a base model goes on writing the next question). `chances` gets the probability the
    model gave each yielded id."""
    stop = answer_stop_ids(loaded)
    if len(prompt.ids) > CONTEXT_BUDGET:
        raise RagError("over_budget", f"{len(prompt.ids):,} > {CONTEXT_BUDGET:,}")
    written: list[int] = []
    offered: list[float] = []
    for token_id in prediction.stream_ids(loaded, prompt.ids, steps, stop_ids=stop, chances=offered):
        if prompt.completion and "\n" in loaded.tokenizer.decode([token_id]) and loaded.tokenizer.decode(written).strip():
            return
        written.append(token_id)
        if chances is not None:
            chances.append(offered[-1])
        yield token_id


def confidence(loaded: LoadedModel, answer_ids: list[int], chances: list[float]) -> float | None:
    """The model's own confidence in its answer: the mean probability it gave the answer's tokens (the end-of-turn
    marker left out). None for an empty answer."""
    stop = answer_stop_ids(loaded)
    kept = [chance for token_id, chance in zip(answer_ids, chances) if token_id not in stop]
    return float(np.mean(kept)) if kept else None


def answer_text(loaded: LoadedModel, answer_ids: list[int]) -> str:
    stop = answer_stop_ids(loaded)
    return loaded.tokenizer.decode([i for i in answer_ids if i not in stop]).strip()


def is_correct(answer: str, accepted: list[str]) -> bool:
    return any(a.lower() in answer.lower() for a in accepted)


# ---------------------------------------------------------------- what the answer drew on

@dataclass
class Attribution:
    attention: np.ndarray  # (passages,) share of the answer tokens' attention that lands on each passage
    token_attention: list[np.ndarray]  # per passage, (its tokens,) attention each of its tokens received
    log_prob: float  # log P(answer | prompt with every passage)
    log_prob_without: np.ndarray  # (passages,) log P(answer | prompt without that passage)

    @property
    def drop(self) -> np.ndarray:
        return self.log_prob - self.log_prob_without  # (passages,) how much the answer needed each passage


def attribute(loaded: LoadedModel, question: str, passages: list[str], answer_ids: list[int]) -> Attribution:
    if not answer_ids:
        raise RagError("no_answer")
    prompt = build_prompt(loaded, question, passages)
    sequence = prompt.ids + list(answer_ids)
    layers = sorted({round(x) for x in np.linspace(0, loaded.info.layers - 1, ATTENTION_LAYERS)})
    request = CaptureRequest(pattern_layers=frozenset(layers))
    device = device_of(loaded.model)
    with loaded.lock, torch.inference_mode():
        with capturing(request):
            loaded.model(torch.as_tensor([sequence], device=device), logits_to_keep=1)
        answer_rows = slice(len(prompt.ids) - 1, len(sequence) - 1)  # the positions that predict the answer's tokens
        received = torch.stack([request.patterns[layer][:, answer_rows].float().mean(dim=(0, 1)) for layer in layers])
        received = received.mean(0).cpu().numpy()  # (seq,) attention each position receives, averaged
        log_prob = float(sequence_log_probs(loaded.model, [(prompt.ids, list(answer_ids))])[0])
        without = []
        for left_out in range(len(passages)):
            others = passages[:left_out] + passages[left_out + 1:]
            ids = build_prompt(loaded, question, others).ids
            without.append(float(sequence_log_probs(loaded.model, [(ids, list(answer_ids))])[0]))
    token_attention = [received[start:end] for start, end in prompt.passage_spans]
    return Attribution(np.array([float(t.sum()) for t in token_attention]), token_attention, log_prob, np.array(without))


# ---------------------------------------------------------------- the built-in question set

def evaluate(loaded: LoadedModel, encoder: LoadedModel, index: Index, questions: list[dict], ks=(1, 3, 5),
             methods=METHODS, job=None) -> list[dict]:
    """Answer every question with k passages from each method: one row per (question, method, k). Methods that
    retrieve the same passages share one answer (often all three at k = 1)."""
    rows, answers = [], {}
    for question in questions:
        retrieval = retrieve(index, encoder, question["question"])
        gold = {i for i, c in enumerate(index.chunks) if c.document == question["document"]}
        for method in methods:
            for k in ks:
                chosen = tuple(retrieval.top(method, k))
                if (question["question"], chosen) not in answers:
                    prompt = build_prompt(loaded, question["question"], [index.chunks[i].text for i in chosen])
                    answers[question["question"], chosen] = answer_text(loaded, list(stream_answer(loaded, prompt, 24)))
                answer = answers[question["question"], chosen]
                rows.append(dict(question=question["question"], language=question["lang"], method=method, k=k,
                                 retrieved_gold=bool(set(chosen) & gold), answer=answer,
                                 correct=is_correct(answer, question["answers"])))
                if job is not None:
                    job.report(len(rows), accuracy=float(np.mean([r["correct"] for r in rows])))
    return rows


def accuracy_table(rows: list[dict]) -> list[dict]:
    """Accuracy per language, method and k."""
    groups: dict[tuple, list[bool]] = {}
    for row in rows:
        groups.setdefault((row["language"], row["method"], row["k"]), []).append(row["correct"])
    return [dict(language=language, method=method, k=k, accuracy=float(np.mean(values)), questions=len(values))
            for (language, method, k), values in groups.items()]


def bundled_questions(language: str | None = None) -> list[dict]:
    """The built-in questions, each with the number of its passage among the bundled documents."""
    ids = [p["id"] for p in bundled()["passages"] if language in (None, p["lang"])]
    return [dict(q, document=ids.index(q["passage"])) for q in bundled()["questions"] if q["passage"] in ids]
