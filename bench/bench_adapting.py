"""Adapting a model on 2 CPU cores: LoRA, DPO and encoder fine-tuning speed and memory, the learning curves (issue 13).

    python3 bench/bench_adapting.py

Targets: 30 LoRA steps on 8 short examples <= 60 s; the learning-curve figure <= 10 s (from the sentences to the
figure, nothing cached); the extra peak resident memory of any one training <= 800 MB above the loaded models.
Each training runs through the process's queue, as the page submits it.
"""

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import adapting, alignment, embeddings, figures, jobs, models, transfer  # noqa: E402
from measure import PeakMemory  # noqa: E402


def run_queued(kind: str, steps: int, work) -> jobs.Job:
    job = jobs.QUEUE.submit(kind, steps, work)
    while not job.finished:
        job.touch()
        time.sleep(0.05)
    assert job.status == "done", (job.status, job.error, job.detail)
    return job


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    memory = PeakMemory()
    smollm, minilm = models.load(models.SMOLLM2), models.load(models.MINILM)
    fact = adapting.presets()["lora"]["fact"]
    pirate = [alignment.PreferencePair(**pair) for pair in adapting.presets()["dpo"]["pirate"]["pairs"]]

    started = time.perf_counter()
    topics = transfer.load_topics()
    gemma = models.load(models.GEMMA3)
    vectors = {"pretrained": {language: embeddings.sentence_embeddings(minilm, topics.texts[language])
                              for language in transfer.LANGUAGES},
               "decoder": {language: embeddings.decoder_sentence_vectors(gemma, topics.texts[language])
                           for language in transfer.LANGUAGES}}
    rows = transfer.learning_curves(vectors, topics)
    figures.lines({f"{r['language']} {r['method']}": ([r["examples"]], [r["accuracy"]]) for r in rows}, "", "", "",
                  log_x=True)
    curve_seconds = time.perf_counter() - started
    at = {(r["language"], r["method"]): r["accuracy"] for r in rows if r["per_class"] == 16}
    print(f"learning curves ({len(topics.labels) * 2} sentences, 6 sizes x 5 draws x 2 methods x 2 languages): "
          f"{curve_seconds:.1f} s (target <= 10 s)")
    print(f"  at 16 per topic: en MiniLM {at['en', 'pretrained']:.0%} vs TF-IDF {at['en', 'tfidf']:.0%}; "
          f"ko MiniLM {at['ko', 'pretrained']:.0%} vs TF-IDF {at['ko', 'tfidf']:.0%}")

    trainings = {
        "LoRA r=8, 30 steps, 8 examples": ("lora", 30, lambda job: adapting.train_lora(
            smollm, "\n".join(fact["examples"]), adapting.LoraSettings(steps=30), job)),
        "LoRA r=8, 15 steps, 16 examples of 64 tokens (the most allowed)": ("lora", 15, lambda job: adapting.train_lora(
            smollm, "\n".join([" ".join(["word"] * 64)] * adapting.MAX_EXAMPLES), adapting.LoraSettings(steps=15), job)),
        "DPO r=8, 12 steps, 4 pairs": ("dpo", 12, lambda job: alignment.train_dpo(
            smollm, pirate, alignment.DpoSettings(steps=12), job)),
        "MiniLM fine-tune, en, 8 per topic, 4 epochs": ("encoder", 8, lambda job: transfer.fine_tune_encoder(
            minilm, "en", 8, 4, job=job)),
        "MiniLM fine-tune, ko, 32 per topic, 4 epochs": ("encoder", 32, lambda job: transfer.fine_tune_encoder(
            minilm, "ko", 32, 4, job=job)),
    }
    for name, (kind, steps, work) in trainings.items():
        resting = memory.reset()
        started = time.perf_counter()
        job = run_queued(kind, steps, work)
        seconds = time.perf_counter() - started
        extra = (memory.peak - resting) / 2**20
        print(f"{name}: {seconds:.1f} s ({seconds / steps:.2f} s per step), loss {job.losses[0]:.2f} -> "
              f"{job.losses[-1]:.2f}, extra peak {extra:.0f} MB (target <= 800 MB)")
        if kind == "lora" and "8 examples" in name:
            adapter = job.result
            print(f"  trainable {adapter.trainable:,} of {adapter.total:,} ({adapter.trainable / adapter.total:.2%}); "
                  f"adapter {adapter.size_bytes / 1024:.0f} KB vs model {adapter.model_bytes / 2**20:.0f} MB")
            adapted = adapting.with_adapter(smollm, adapter)
            prompt, continuation = fact["taught"]
            print(f"  P('{continuation}' | '{prompt}'): {adapting.continuation_probability(smollm, prompt, continuation):.5f}"
                  f" -> {adapting.continuation_probability(adapted, prompt, continuation):.3f}")
    print(f"process peak resident memory: {memory.lifetime_peak / 2**30:.2f} GB")


if __name__ == "__main__":
    main()
