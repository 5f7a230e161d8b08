"""What bf16 storage of Gemma 3's weights costs on this CPU (issue 23): its tied 262,144 x 640 embedding is 671 MB in
float32, 335 MB in bf16; its block matrices 401 MB and 201 MB.

    python3 bench/bench_weights_at_rest.py

Prints whether the CPU multiplies bf16 natively, the unembedding's time for 1, 16 and 64 positions with the table
in float32, in bf16 multiplied in bf16, and in bf16 as the engine multiplies it on this CPU
(architecture.table_product: natively, or widened to float32 a slice at a time), best of 5; and what the bf16 table
changes in the next-token distribution on a few prompts (KL in nats, top-1 agreement, largest logit difference),
through the model's own final norm. Then the block matrices: the whole model's forward on 1, 16 and 512 positions
and 20 greedy tokens with its block matrices in float32 and in bf16 as the engine stores them
(models.narrow_block_matrices), the two models alternating, best of 5 and the median ratio (this machine's noise), and what
bf16 blocks change in the next token (the prompts' last positions and 512 positions of a long text) and the greedy text.
"""

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import activations, architecture, memory, models  # noqa: E402

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
    block_matrices()


def kl(exact: torch.Tensor, approx: torch.Tensor) -> torch.Tensor:
    """KL(exact || approx) of the softmaxes over the last axis, in nats."""
    p, q = torch.log_softmax(exact.double(), -1), torch.log_softmax(approx.double(), -1)
    return (p.exp() * (p - q)).sum(-1)


def block_matrices() -> None:
    models.LARGE_TABLE_BYTES = 256 * 2**20  # both tables in bf16, as the app stores them
    narrow = models.load(models.GEMMA3, device="cpu", dtype="float32")
    assert narrow.info.block_dtype == "bfloat16"  # the app's own choice for Gemma (models.NARROW_BLOCK_PARAMETERS)
    chosen = models.NARROW_BLOCK_PARAMETERS.pop(models.GEMMA3)
    wide = models.load(models.GEMMA3, device="cpu", dtype="float32")  # its blocks in float32
    models.NARROW_BLOCK_PARAMETERS[models.GEMMA3] = chosen
    print(f"\nblock matrices: float32 {memory.tensor_bytes(wide.model) / 2**20:,.0f} MB resident, "
          f"bf16 {memory.tensor_bytes(narrow.model) / 2**20:,.0f} MB (tables in bf16 in both)")
    tokenizer = wide.tokenizer
    text = (ROOT / "assets" / "sample_long.txt").read_text()
    long_ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :512]  # (1, 512)
    prompt = tokenizer(PROMPTS[0], return_tensors="pt")
    runs = {"forward, 1 position": lambda m: m(long_ids[:, :1]), "forward, 16 positions": lambda m: m(long_ids[:, :16]),
            "forward, 512 positions": lambda m: m(long_ids),
            "20 greedy tokens": lambda m: m.generate(**prompt, max_new_tokens=20, do_sample=False)}
    times = {(run, kind): [] for run in runs for kind in ("wide", "narrow")}
    with torch.inference_mode():
        for _ in range(5):
            for run, function in runs.items():
                for kind, loaded in (("wide", wide), ("narrow", narrow)):
                    started = time.perf_counter()
                    function(loaded.model)
                    times[run, kind].append(time.perf_counter() - started)
        for run in runs:
            f32, bf16 = min(times[run, "wide"]), min(times[run, "narrow"])
            ratio = statistics.median(n / w for w, n in zip(times[run, "wide"], times[run, "narrow"]))
            print(f"  {run:<22}: float32 {f32 * 1e3:8.1f} ms, bf16 blocks {bf16 * 1e3:8.1f} ms (best of 5: {bf16 / f32:.2f}x; "
                  f"median of the 5 side-by-side ratios {ratio:.2f}x)")
        last = [kl(wide.model(**tokenizer(p, return_tensors="pt")).logits[0, -1],
                   narrow.model(**tokenizer(p, return_tensors="pt")).logits[0, -1]) for p in PROMPTS]
        exact, approx = wide.model(long_ids).logits[0], narrow.model(long_ids).logits[0]  # (512, vocab)
        spread = kl(exact, approx)
        texts = [tokenizer.decode(m.generate(**prompt, max_new_tokens=20, do_sample=False)[0]) for m in (wide.model, narrow.model)]
    print(f"  next token with bf16 blocks: {len(PROMPTS)} prompts' last positions mean KL {sum(last) / len(last):.2e} "
          f"nats (max {max(last):.2e}); 512 positions mean KL {spread.mean():.2e} (max {spread.max():.2e}), top-1 "
          f"agreement {(exact.argmax(-1) == approx.argmax(-1)).float().mean():.1%}; the same 20 greedy tokens: "
          f"{texts[0] == texts[1]}")


if __name__ == "__main__":
    main()
