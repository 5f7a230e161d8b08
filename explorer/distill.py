"""Knowledge distillation on the topic set: a large teacher's softened answers train a student 3,000 times smaller.

The teacher is a decoder (Gemma 3 by default) read a third of the way up, its sentence vectors classified by a
logistic regression fitted on the labelled pool (32 sentences a topic). The student is a small network trained from
scratch: each sentence's character 1–3-grams hashed into 4,096 buckets (no tokenizer, no pretrained anything), one
hidden layer of 16, four outputs. It learns from n labelled sentences a topic either from the hard labels alone
(cross-entropy) or from the teacher's distribution softened at temperature T (Hinton et al., 2015):

    loss = T² · KL(softmax(teacher / T) ‖ softmax(student / T))

T² keeps the gradients' size the same whatever T. At T = 1 the teacher is nearly certain on its own training
sentences; a higher T lifts the small probabilities it gives the other topics ("dark knowledge": which wrong topic is
nearly right), and that is what the student copies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from explorer import embeddings, transfer
from explorer.jobs import Job, TrainingError
from explorer.models import LoadedModel

TEMPERATURES = (1, 2, 4, 8)
PER_CLASS = (1, 2, 4, 8, 16, 32)  # labelled sentences a topic on the student's learning curve
POOL_PER_CLASS = 32  # the teacher's labelled sentences (the rest, 16 a topic, are held out)
BUCKETS, HIDDEN = 4096, 16
EPOCHS, LEARNING_RATE = 300, 0.01
REPEATS = 3  # seeded draws a point on the curve averages


@dataclass
class Teacher:
    language: str
    logits: np.ndarray  # (n, classes): for every sentence of the set
    pool: np.ndarray  # indices of its labelled sentences
    test: np.ndarray  # held out: never seen by teacher or student
    accuracy: float  # on the held-out sentences
    parameters: int  # the decoder's up to the layer read, and the classifier
    seconds_per_sentence: float


def softened(logits: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) along the last axis."""
    scaled = logits / temperature
    scaled = scaled - scaled.max(-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(-1, keepdims=True)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)), the mean over the batch: (b, classes) each -> ()."""
    teacher_log = torch.log_softmax(teacher_logits / temperature, -1)  # (b, classes)
    student_log = torch.log_softmax(student_logits / temperature, -1)  # (b, classes)
    kl = torch.nn.functional.kl_div(student_log, teacher_log, log_target=True, reduction="batchmean")
    return temperature ** 2 * kl


def teacher(decoder: LoadedModel, language: str, vectors: np.ndarray | None = None, seed: int = 0) -> Teacher:
    """The decoder's sentence vectors, a logistic regression fitted on the pool; its logits for every sentence.
    `vectors` (n, d) may be passed in (computed once per model and language); the speed is measured either way."""
    if language not in transfer.LANGUAGES:
        raise TrainingError("bad_language", language)
    topics = transfer.load_topics()
    texts = topics.texts[language]
    seconds = _seconds_per_sentence(lambda batch: embeddings.decoder_sentence_vectors(decoder, batch), texts[:16])
    if vectors is None:
        vectors = embeddings.decoder_sentence_vectors(decoder, texts)  # (n, d)
    pool, test = transfer.split(topics.labels, POOL_PER_CLASS, seed)
    classifier = transfer.classifier(scaled=True).fit(vectors[pool], topics.labels[pool])
    layer = max(1, decoder.info.layers // 3)  # where decoder_sentence_vectors reads
    read = [decoder.parts.embed, *list(decoder.parts.blocks)[:layer]]
    parameters = sum(p.numel() for module in read for p in module.parameters()) + \
        classifier[-1].coef_.size + classifier[-1].intercept_.size
    return Teacher(language, classifier.decision_function(vectors), pool, test,
                   float(classifier.score(vectors[test], topics.labels[test])), parameters, seconds)


class Student(torch.nn.Module):
    """Hashed character n-grams -> 16 -> classes: ~65 K parameters, trained from scratch."""

    def __init__(self, classes: int):
        super().__init__()
        self.hidden = torch.nn.Linear(BUCKETS, HIDDEN)
        self.out = torch.nn.Linear(HIDDEN, classes)

    def forward(self, grams: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(grams)))  # (b, BUCKETS) -> (b, classes)


def grams(texts: list[str]) -> torch.Tensor:
    """(n, BUCKETS) float32: each sentence's character 1–3-grams within words, hashed, unit length."""
    from sklearn.feature_extraction.text import HashingVectorizer  # with its use: see transfer.classifier

    hashed = HashingVectorizer(analyzer="char_wb", ngram_range=(1, 3), n_features=BUCKETS, alternate_sign=False)
    return torch.from_numpy(hashed.transform(texts).toarray().astype(np.float32))


def train_student(features: torch.Tensor, labels: np.ndarray, teacher_logits: np.ndarray | None, temperature: float,
                  seed: int = 0) -> tuple[Student, list[float]]:
    """Full-batch AdamW on the labelled sentences: cross-entropy on `labels` when `teacher_logits` is None, else the
    distillation loss on the teacher's logits (the labels unused). Returns the student and its loss per epoch."""
    torch.manual_seed(seed)
    student = Student(int(labels.max()) + 1 if teacher_logits is None else teacher_logits.shape[1])
    optimizer = torch.optim.AdamW(student.parameters(), lr=LEARNING_RATE)
    target = torch.as_tensor(labels) if teacher_logits is None else torch.as_tensor(teacher_logits, dtype=torch.float32)
    losses = []
    for _ in range(EPOCHS):
        logits = student(features)  # (b, classes)
        loss = torch.nn.functional.cross_entropy(logits, target) if teacher_logits is None else \
            distillation_loss(logits, target, temperature)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return student.eval(), losses


def accuracy(student: Student, features: torch.Tensor, labels: np.ndarray) -> float:
    with torch.inference_mode():
        return float((student(features).argmax(-1).numpy() == labels).mean())


@dataclass
class Curves:
    language: str
    temperature: float
    per_class: tuple[int, ...]
    hard: list[float]  # the student's held-out accuracy from the hard labels, per size (mean of REPEATS draws)
    soft: list[float]  # from the teacher's distribution at the temperature
    hard_losses: list[float]  # the largest student's loss per epoch, each way
    soft_losses: list[float]
    teacher: Teacher
    student_parameters: int
    student_seconds_per_sentence: float
    seconds: float  # to train every student


def curves(teacher_: Teacher, temperature: float, job: Job | None = None) -> Curves:
    """Students at each size, hard and soft, REPEATS seeded draws of the labelled sentences each (the held-out set
    fixed): 2 × sizes × REPEATS trainings, each reported to the job."""
    if temperature not in TEMPERATURES:
        raise TrainingError("bad_temperature", f"{temperature}")
    topics = transfer.load_topics()
    labels, texts = topics.labels, topics.texts[teacher_.language]
    features = grams(texts)  # (n, BUCKETS)
    test = teacher_.test
    started = time.perf_counter()
    hard, soft, done = [], [], 0
    last: dict[str, list[float]] = {}  # the largest students' losses, seed 0
    for per_class in PER_CLASS:
        scores = {"hard": [], "soft": []}
        for repeat in range(REPEATS):
            chosen = _draw(teacher_.pool, labels, per_class, repeat)
            for way in scores:
                student, losses = train_student(features[chosen], labels[chosen],
                                                teacher_.logits[chosen] if way == "soft" else None, temperature, repeat)
                scores[way].append(accuracy(student, features[test], labels[test]))
                done += 1
                if job is not None:
                    job.report(done, losses[-1])
                if per_class == PER_CLASS[-1] and repeat == 0:
                    last[way] = losses
        hard.append(float(np.mean(scores["hard"])))
        soft.append(float(np.mean(scores["soft"])))
    seconds = time.perf_counter() - started
    student = Student(len(topics.classes)).eval()
    with torch.inference_mode():
        student_seconds = _seconds_per_sentence(lambda batch: student(grams(batch)), texts[:16])
    return Curves(teacher_.language, temperature, PER_CLASS, hard, soft, last["hard"], last["soft"], teacher_,
                  sum(p.numel() for p in student.parameters()), student_seconds, seconds)


def _seconds_per_sentence(classify, sentences: list[str], repeats: int = 3) -> float:
    """The best of `repeats` timings of classifying the sentences at once, per sentence (the first pays for the
    process's first allocations of that shape)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        classify(sentences)
        best = min(best, time.perf_counter() - started)
    return best / len(sentences)


def _draw(pool: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` of the pool's sentences of each topic, drawn with `seed`."""
    generator = np.random.default_rng(seed)
    return np.concatenate([generator.permutation(pool[labels[pool] == label])[:per_class]
                           for label in np.unique(labels)])


def trainings() -> int:
    return 2 * len(PER_CLASS) * REPEATS
