"""Embeddings figures (issue 4), measured in one run and printed as ratios to the issue's budgets:

- the full-vocabulary map from the shipped/cached projection: load + figure + browser payload (budget 2 s, 3 MB);
- a 2,000-point UMAP on demand after warm-up (budget 5 s), and what the first UMAP in a process costs.

    python3 bench/bench_embeddings.py
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import embeddings, figures, models  # noqa: E402
from explorer.labels import vocabulary_labels


def main() -> None:
    for key in (models.SMOLLM2, models.MINILM):
        loaded = models.load(key)
        started = time.perf_counter()
        labels = vocabulary_labels(loaded.tokenizer)
        kinds = embeddings.token_kinds(loaded.tokenizer, labels)
        labelled = time.perf_counter()
        coordinates = embeddings.vocabulary_projection(loaded, "umap", 2)
        loaded_at = time.perf_counter()
        figure = figures.vocabulary_map(coordinates, kinds, labels, {k: k for k in embeddings.TOKEN_KINDS}, [], key)
        payload = len(figure.to_json().encode())
        done = time.perf_counter()
        total = done - started
        print(f"{key}: {len(labels):,} points; labels+kinds {labelled - started:.2f} s, cached projection "
              f"{(loaded_at - labelled) * 1000:.0f} ms, figure+JSON {done - loaded_at:.2f} s; total {total:.2f} s = "
              f"{total / 2:.2f} of the 2 s budget; payload {payload / 1e6:.2f} MB = {payload / 3e6:.2f} of 3 MB")
    minilm = models.load(models.MINILM)
    points = embeddings.vocabulary_matrix(minilm)[:2000]
    started = time.perf_counter()
    embeddings.warm_up_umap()
    warm = time.perf_counter() - started
    started = time.perf_counter()
    embeddings.project(points, "umap", 2)
    fit = time.perf_counter() - started
    started = time.perf_counter()
    embeddings.project(points, "pca", 2)
    pca = time.perf_counter() - started
    print(f"first UMAP in the process (compilation, done in a background thread by the page): {warm:.1f} s")
    print(f"2,000-point UMAP after warm-up: {fit:.2f} s = {fit / 5:.2f} of the 5 s budget; PCA {pca * 1000:.0f} ms")


if __name__ == "__main__":
    main()
