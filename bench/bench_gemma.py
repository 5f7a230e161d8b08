"""Gemma 3 270M on 2 CPU cores (issue "Korean by default"), and the numbers behind each language's default model.

    python3 bench/bench_gemma.py

Prints: load from the converted cache; one next-token step with a cached prefix; a 30-token answer; a capture at
2,048 tokens against the same forward without capture (ratio); the vocabulary map's first view and payload (shipped
projection, 50,000 points); the RAG table on the built-in questions at k = 1 for both decoders; and, for the choice
of default, Korean tokens per sentence, greedy Korean continuations and the rank of " Paris".
"""

import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from explorer import activations, embeddings, figures, models, prediction, rag  # noqa: E402
from explorer.labels import vocabulary_labels  # noqa: E402

KOREAN = ["나는 오늘 아침에 학교에 갔다.", "대한민국의 수도는 서울이다.", "언어 모델은 다음 토큰을 예측한다.",
          "안녕하세요, 반갑습니다.", "새별섬의 인구는 1,430명이다."]
CONTINUE = ["나는 오늘 아침에", "서울은 한국의"]
LONG = (ROOT / "assets" / "sample_long.txt").read_text(encoding="utf-8")


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def best_of(runs: int, function, *args):
    return min(timed(function, *args)[0] for _ in range(runs))


def step_and_answer(loaded) -> tuple[float, float]:
    ids = [int(i) for i in activations.encode(loaded, "서울은 한국의 수도이고, 부산은", None)[0]]
    _, past = prediction.next_token_logits(loaded, ids)
    step = best_of(5, lambda: prediction.next_token_logits(loaded, ids + [ids[-1]], copy.deepcopy(past)))  # one token
    # on the prefix (a fresh copy each time: the cache grows as it is used)
    answer, _ = timed(prediction.generate_ids, loaded, ids, 30)
    return step, answer


def capture_ratio(loaded, tokens: int = 2048) -> tuple[int, float, float]:
    ids = activations.encode(loaded, LONG * 10, tokens)[0]
    names = ["blocks.*.attn.head_stats", "blocks.*.resid_post", "next_logits"]
    captured = best_of(2, activations.run_capture, loaded, loaded.tokenizer.decode(ids[1:]), names, tokens)
    with torch.inference_mode():
        plain = best_of(2, lambda: loaded.model(torch.as_tensor([ids]), logits_to_keep=1))
    return len(ids), captured, plain


def vocabulary_map(loaded) -> tuple[float, int, int]:
    started = time.perf_counter()
    labels = vocabulary_labels(loaded.tokenizer)
    kinds = embeddings.token_kinds(loaded.tokenizer, labels)
    coordinates = embeddings.vocabulary_projection(loaded, "umap", 2)
    shown = embeddings.map_ids(kinds)
    figure = figures.vocabulary_map(coordinates, kinds, labels, {k: k for k in embeddings.TOKEN_KINDS}, [], "map", shown)
    payload = len(figure.to_json().encode())
    return time.perf_counter() - started, payload, len(shown)


def paris_rank(loaded) -> int:
    ids = [int(i) for i in activations.encode(loaded, "The capital of France is", None)[0]]
    logits, _ = prediction.next_token_logits(loaded, ids)
    paris = loaded.tokenizer.encode(" Paris", add_special_tokens=False)[0]
    return int((np.asarray(logits) > np.asarray(logits)[paris]).sum()) + 1


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}")
    seconds, gemma = timed(models.load, models.GEMMA3)
    print(f"Gemma 3 270M load from the converted cache: {seconds:.1f} s")
    smollm = models.load(models.SMOLLM2)
    minilm = models.load(models.MINILM)
    for loaded in (gemma, smollm):
        key = loaded.info.key
        step, answer = step_and_answer(loaded)
        print(f"{key}: next-token step on a cached prefix {step * 1000:.0f} ms; 30-token answer {answer:.2f} s")
        tokens = [len(loaded.tokenizer(s, add_special_tokens=False)["input_ids"]) for s in KOREAN]
        print(f"  Korean tokens per sentence {np.mean(tokens):.1f} ({tokens}); ' Paris' rank after "
              f"'The capital of France is': {paris_rank(loaded)}")
        for text in CONTINUE:
            added, _ = prediction.generate(loaded, text, 10)
            print(f"  greedy: {text!r} -> {loaded.tokenizer.decode(added)!r}")
    count, captured, plain = capture_ratio(gemma)
    print(f"Gemma capture at {count:,} tokens (head stats + every residual): {captured:.2f} s vs plain forward "
          f"{plain:.2f} s = {captured / plain:.2f}x")
    seconds, payload, shown = vocabulary_map(gemma)
    print(f"Gemma vocabulary map, first view: {seconds:.2f} s (target <= 10 s), {shown:,} of 262,144 points, "
          f"payload {payload / 1e6:.2f} MB (target <= 3 MB)")
    index = rag.build_index(minilm, rag.chunk(rag.paragraphs(rag.bundled_text())))
    for loaded in (gemma, smollm):
        seconds, rows = timed(rag.evaluate, loaded, minilm, index, rag.bundled_questions(), (1,))
        table = {(r["language"], r["method"]): f"{r['accuracy'] * r['questions']:.0f}/{r['questions']}"
                 for r in rag.accuracy_table(rows)}
        print(f"RAG at k = 1 on {loaded.info.key} ({seconds:.0f} s): {table}")


if __name__ == "__main__":
    main()
