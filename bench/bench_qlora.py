"""QLoRA against LoRA on 2 CPU cores (issue 26): the measured memory table, step time, final loss of both.

    python3 bench/bench_qlora.py [model ...]      (default: smollm2-135m gemma3-270m)

Each model trains LoRA on its float32 weights and QLoRA on its torchao int4 and int8 copies, 10 steps on the
invented-fact examples, rank 8, as the page's part does it; then the resident memory the job added at its peak.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import adapting, models, qlora  # noqa: E402
from measure import PeakMemory  # noqa: E402

MB = 2**20


def main(keys: list[str]) -> None:
    memory = PeakMemory()
    text = "\n".join(adapting.presets()["lora"]["fact"]["examples"])
    settings = adapting.LoraSettings(rank=8, steps=10)
    for key in keys:
        loaded = models.load(key)
        for scheme in qlora.SCHEMES:
            before = memory.reset()
            started = time.perf_counter()
            found = qlora.compare(loaded, text, settings, scheme)
            print(f"\n{key}, QLoRA on {scheme}: {time.perf_counter() - started:.1f} s in all, "
                  f"extra peak {(memory.peak - before) / MB:,.0f} MB (the copy included)")
            print(f"  step: LoRA {found.lora_seconds:.2f} s, QLoRA {found.qlora_seconds:.2f} s "
                  f"(x{found.qlora_seconds / found.lora_seconds:.2f})")
            print(f"  loss: LoRA {found.lora_losses[0]:.2f} -> {found.lora_losses[-1]:.2f}, "
                  f"QLoRA {found.qlora_losses[0]:.2f} -> {found.qlora_losses[-1]:.2f}")
            print(f"  {'MB':<12}" + "".join(f"{m:>10}" for m in qlora.METHODS))
            for row in ("frozen", "trainable", "gradients", "optimizer", "activations", "total"):
                print(f"  {row:<12}" + "".join(f"{getattr(found.memory[m], row) / MB:>10,.1f}" for m in qlora.METHODS))
            for size in qlora.SCALES:
                here, papers = qlora.at_scale(found, size), qlora.published_at_scale(size)
                print(f"  {size / 1e9:.0f}B, GB here / papers: " + ", ".join(
                    f"{m} {here[m] / 1e9:,.1f} / {papers[m] / 1e9:,.1f}" for m in qlora.METHODS))


if __name__ == "__main__":
    main(sys.argv[1:] or ["smollm2-135m", "gemma3-270m"])
