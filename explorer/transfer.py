"""Transfer learning with MiniLM: pre-trained sentence vectors against features learned from scratch.

The bundled set (assets/adapting/topics.json) holds 48 sentences on each of four topics, each written in English
with its Korean translation, so the two languages differ in nothing but the language. A logistic regression on
frozen MiniLM vectors is compared with the same classifier on TF-IDF character n-grams fitted on the labelled
examples alone, at 1, 2, 4 … 32 labelled examples per topic; then the encoder itself is fine-tuned briefly.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from explorer import embeddings
from explorer.models import LoadedModel
from explorer.jobs import Job, TrainingError

TOPICS = Path(__file__).resolve().parent.parent / "assets" / "adapting" / "topics.json"
LANGUAGES = ("en", "ko")
PER_CLASS = (1, 2, 4, 8, 16, 32)  # labelled examples per topic on the learning curve
TEST_PER_CLASS = 16  # held out for every size: the first 32 of a topic's shuffled sentences can be labelled
METHODS = ("pretrained", "decoder", "tfidf")  # MiniLM's vectors, a multilingual decoder's hidden states, TF-IDF
MAX_EPOCHS = 20


@dataclass(frozen=True)
class Topics:
    classes: tuple[str, ...]  # "sports", …
    names: dict[str, dict[str, str]]  # class -> language -> name
    labels: np.ndarray  # (n,) class index of each sentence
    texts: dict[str, list[str]]  # language -> n sentences (translations of one another)


@lru_cache(maxsize=1)
def load_topics(path: Path = TOPICS) -> Topics:
    data = json.loads(path.read_text(encoding="utf-8"))
    classes = tuple(data["classes"])
    rows = data["sentences"]
    return Topics(classes, data["classes"], np.array([classes.index(r["label"]) for r in rows]),
                  {language: [r[language] for r in rows] for language in LANGUAGES})


def split(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` labelled sentences of each topic and TEST_PER_CLASS held out, drawn with `seed`."""
    generator = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        shuffled = generator.permutation(np.flatnonzero(labels == label))
        train.extend(shuffled[:per_class])
        test.extend(shuffled[-TEST_PER_CLASS:])
    return np.array(train), np.array(test)


# scikit-learn is imported where it fits, not with the module: the lessons page imports this one, and sklearn with
# scipy's solvers adds ~105 MB to the shared process (measured) that only a transfer or distillation run needs.

def classifier(scaled: bool = False):
    """A logistic regression (each feature standardised first when `scaled`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    regression = LogisticRegression(max_iter=2000)
    return make_pipeline(StandardScaler(), regression) if scaled else regression


def vector_accuracy(vectors: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Each feature standardised on the labelled sentences, then the classifier: a decoder's residual stream has a few
    dimensions hundreds of times larger than the rest, which swamp an unscaled fit (Gemma's layer 9: 27 % in Korean
    unscaled, 75 % scaled); MiniLM's unit vectors score the same either way (99 % / 42 %)."""
    fitted = classifier(scaled=True).fit(vectors[train], labels[train])
    return float(fitted.score(vectors[test], labels[test]))


def tfidf_accuracy(texts: list[str], labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Character 1–3-grams within words: the from-scratch baseline, fitted on the labelled sentences only.
    (Characters rather than words, so Korean endings and particles do not hide the stem.)"""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3))
    features = vectorizer.fit_transform([texts[i] for i in train])
    fitted = classifier().fit(features, labels[train])
    return float(fitted.score(vectorizer.transform([texts[i] for i in test]), labels[test]))


def learning_curves(vectors: dict[str, dict[str, np.ndarray]], topics: Topics, repeats: int = 5, seed: int = 0) -> list[dict]:
    """Test accuracy per language, method and number of labelled examples, over `repeats` random draws.

    vectors: method ("pretrained", "decoder") -> language -> (n, d) frozen sentence vectors; TF-IDF is always added.
    One row per point: language, method, per_class, examples, accuracy (the mean), low and high (the worst and best
    draw).
    """
    rows = []
    for language in LANGUAGES:
        for per_class in PER_CLASS:
            scores = {method: [] for method in [*vectors, "tfidf"]}
            for repeat in range(repeats):
                train, test = split(topics.labels, per_class, seed + repeat)
                for method, by_language in vectors.items():
                    scores[method].append(vector_accuracy(by_language[language], topics.labels, train, test))
                scores["tfidf"].append(tfidf_accuracy(topics.texts[language], topics.labels, train, test))
            for method, values in scores.items():
                rows.append(dict(language=language, method=method, per_class=per_class,
                                 examples=per_class * len(topics.classes), accuracy=float(np.mean(values)),
                                 low=float(np.min(values)), high=float(np.max(values))))
    return rows


# ---------------------------------------------------------------- fine-tuning the encoder

@dataclass
class FineTune:
    language: str
    per_class: int
    epochs: int
    train: np.ndarray  # indices of the labelled sentences
    test: np.ndarray
    before: np.ndarray  # (n, d) sentence vectors of the frozen encoder
    after: np.ndarray  # (n, d) after fine-tuning
    accuracy_before: float  # logistic regression on the same labelled sentences, scored on the held-out ones
    accuracy_after: float
    losses: list[float]


def fine_tune_encoder(loaded: LoadedModel, language: str, per_class: int = 8, epochs: int = 4,
                      learning_rate: float = 1e-4, seed: int = 0, job: Job | None = None) -> FineTune:
    """A few epochs on the labelled sentences: the encoder (a copy; its word embeddings stay shared and frozen)
    and a linear head on its unit sentence vectors, trained together with cross-entropy."""
    if language not in LANGUAGES:
        raise TrainingError("bad_language", language)
    if not 1 <= per_class <= max(PER_CLASS):
        raise TrainingError("bad_examples", f"1–{max(PER_CLASS)}")
    if not 1 <= epochs <= MAX_EPOCHS:
        raise TrainingError("bad_steps", f"1–{MAX_EPOCHS}")
    topics = load_topics()
    texts, labels = topics.texts[language], topics.labels
    train, test = split(labels, per_class, seed)
    torch.manual_seed(seed)
    words = loaded.parts.embed.weight  # (vocab, d): 45 % of MiniLM's parameters, frozen and not copied
    with loaded.lock:
        encoder = copy.deepcopy(loaded.model, {id(words): torch.nn.Parameter(words.detach(), requires_grad=False)})
    head = torch.nn.Linear(loaded.info.hidden_size, len(topics.classes)).to(words.device)
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad] + list(head.parameters()),
                                  lr=learning_rate)
    generator = np.random.default_rng(seed)
    batches_per_epoch = -(-len(train) // 16)
    losses = []
    encoder.train()
    for epoch in range(epochs):
        order = generator.permutation(train)
        for start in range(0, len(order), 16):
            batch = order[start:start + 16]
            encoded = loaded.tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=128,
                                       return_tensors="pt").to(words.device)
            vectors = embeddings.mean_pool(encoder(**encoded).last_hidden_state, encoded["attention_mask"])  # (b, d)
            target = torch.as_tensor(labels[batch], device=words.device)
            loss = torch.nn.functional.cross_entropy(head(vectors) * 20.0, target)  # x20: unit vectors, cosine-like
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if job is not None:
                job.report(epoch * batches_per_epoch + start // 16 + 1, losses[-1])
    encoder.eval()
    before = embeddings.sentence_embeddings(loaded, texts)
    after = embeddings.sentence_embeddings(replace(loaded, model=encoder, lock=threading.Lock()), texts)
    return FineTune(language, per_class, epochs, train, test, before, after,
                    vector_accuracy(before, labels, train, test), vector_accuracy(after, labels, train, test), losses)


def fine_tune_steps(per_class: int, epochs: int, classes: int = 4) -> int:
    return epochs * -(-per_class * classes // 16)
