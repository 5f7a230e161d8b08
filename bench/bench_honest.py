"""What an API call carries, and hallucination measured (issue "Smaller, cheaper, honest"), 2 CPU cores.

    python3 bench/bench_honest.py

Prints: the API view's time to build (the request answered by SmolLM2-Instruct, 48 tokens at most, and its other-
language twin for the cost table) and both requests' token counts; for every bundled RAG question, on the model
that writes its language (Gemma for Korean, SmolLM2 for English): the answer with the top BM25 passage and without
any, whether each is right, and the model's confidence in each (mean probability of the answer's tokens).
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from explorer import api, models, rag, tokenize  # noqa: E402

KOREAN = "대한민국의 수도는 어디인가요? 한 문장으로 답해 주세요."
ENGLISH = "What is the capital of South Korea? Answer in one sentence."


def answered(decoder, question, passages):
    chances: list[float] = []
    ids = list(rag.stream_answer(decoder, rag.build_prompt(decoder, question, passages), 24, chances=chances))
    return rag.answer_text(decoder, ids), rag.confidence(decoder, ids, chances)


def main() -> None:
    chat = models.load(models.SMOLLM2)
    api.chat_completion(chat, [{"role": "user", "content": "warm up"}], 0.0, 2)
    started = time.perf_counter()
    calls = [api.chat_completion(chat, [{"role": "user", "content": text}], 0.7, 48) for text in (KOREAN, ENGLISH)]
    print(f"API view, two calls of up to 48 tokens on {chat.info.key}: {time.perf_counter() - started:.2f} s")
    for text, call in zip((KOREAN, ENGLISH), calls):
        usage = call.response["usage"]
        print(f"  {text[:24]!r}: prompt {usage['prompt_tokens']} tokens (cl100k: "
              f"{tokenize.tokenize_with('cl100k', text).count}), completion {usage['completion_tokens']}")

    encoder = models.load(models.MINILM)
    decoders = {"ko": models.load(models.GEMMA3), "en": chat}
    rows = []
    for language, decoder in decoders.items():
        index = rag.build_index(encoder, rag.chunk(rag.paragraphs(rag.bundled_text(language))))
        for question in [q for q in rag.bundled_questions() if q["lang"] == language]:
            top = [index.chunks[i].text for i in rag.retrieve(index, encoder, question["question"]).top("bm25", 1)]
            for passages, setting in ((top, "with"), ([], "without")):
                answer, sure = answered(decoder, question["question"], passages)
                right = rag.is_correct(answer, question["answers"])
                rows.append((language, setting, right, sure))
                print(f"  {decoder.info.key} {setting:7} {'right' if right else 'wrong'} {sure or 0:.0%} "
                      f"{question['question'][:30]!r} -> {answer[:50]!r}")
    for language in decoders:
        for setting in ("with", "without"):
            part = [r for r in rows if r[0] == language and r[1] == setting and r[3] is not None]
            right = [r[3] for r in part if r[2]]
            wrong = [r[3] for r in part if not r[2]]
            print(f"{language} {setting} the passage: {len(right)}/{len(part)} right; mean confidence right "
                  f"{np.mean(right) if right else float('nan'):.0%}, wrong {np.mean(wrong) if wrong else float('nan'):.0%}")
    wrong = [r[3] for r in rows if not r[2] and r[3] is not None]
    right = [r[3] for r in rows if r[2] and r[3] is not None]
    if wrong and right:
        print(f"wrong answers at or above the median right answer's confidence ({np.median(right):.0%}): "
              f"{sum(w >= np.median(right) for w in wrong)}/{len(wrong)}")


if __name__ == "__main__":
    main()
