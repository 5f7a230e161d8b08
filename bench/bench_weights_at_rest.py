"""What bf16 storage of the big tables costs on this CPU (issue 23): Gemma 3's tied 262,144 x 640 embedding is
671 MB in float32, 335 MB in bf16.

    python3 bench/bench_weights_at_rest.py

Prints whether the CPU multiplies bf16 natively, the unembedding's time for 1, 16 and 64 positions with the table
in float32, in bf16 multiplied in bf16, and in bf16 as the engine multiplies it on this CPU
(architecture.table_product: natively, or widened to float32 a slice at a time), best of 5; and what the bf16 table
changes in the next-token distribution on a few prompts (KL in nats, top-1 agreement, largest logit difference),
through the model's own final norm.
"""

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import activations, architecture, models  # noqa: E402

PROMPTS = ["나는 오늘 아침에", "대한민국의 수도는", "The capital of France is", "서울은 한국의",
           "질문: 프랑스의 수도는?\n답:", "Once upon a time, there was a"]


def best(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    print("CPU bf16 instructions:", ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags) or "none")
    models.LARGE_TABLE_BYTES = float("inf")  # loaded as it is stored: its table in float32
    gemma = models.load(models.GEMMA3, device="cpu", dtype="float32")
    table = gemma.parts.unembed.weight.detach()  # (262144, 640) float32, tied to the embedding
    narrow = table.to(torch.bfloat16)
    print(f"table: {tuple(table.shape)}, float32 {table.numel() * 4 / 2**20:,.0f} MB, bf16 {narrow.numel() * 2 / 2**20:,.0f} MB")
    torch.manual_seed(0)
    with torch.inference_mode():
        for positions in (1, 16, 64):
            states = torch.randn(positions, table.shape[1])  # (positions, 640)
            wide = best(lambda: states @ table.T)
            cast = best(lambda: (states.to(torch.bfloat16) @ narrow.T).float())
            engine = best(lambda: architecture.table_product(states, narrow))
            print(f"unembed {positions:>2} position(s): float32 {wide * 1e3:7.2f} ms, bf16 multiply {cast * 1e3:7.2f} ms "
                  f"({cast / wide:.2f}x), the engine's bf16 {engine * 1e3:7.2f} ms ({engine / wide:.2f}x)")
        kls, same, largest = [], 0, 0.0
        for prompt in PROMPTS:
            final = torch.from_numpy(activations.capture(gemma, prompt, ["final"])["final"])[-1:]  # (1, 640) normed
            exact = (final @ table.T).double()  # (1, vocab)
            approx = architecture.table_product(final, narrow).double()
            p, q = torch.log_softmax(exact, -1), torch.log_softmax(approx, -1)
            kls.append(float((p.exp() * (p - q)).sum()))
            same += int(exact.argmax() == approx.argmax())
            largest = max(largest, float((exact - approx).abs().max()))
    print(f"next token with the bf16 table, {len(PROMPTS)} prompts: mean KL {sum(kls) / len(kls):.2e} nats "
          f"(max {max(kls):.2e}), top-1 agreement {same}/{len(PROMPTS)}, largest logit difference {largest:.3f}")


if __name__ == "__main__":
    main()
