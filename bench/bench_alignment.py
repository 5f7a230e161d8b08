"""From base model to assistant on Gemma 3 270M, 2 CPU cores (issue "From base model to assistant").

    python3 bench/bench_alignment.py

Prints: SFT at the page's default size (8 steps, the 16 bundled instructions; 12 measured too): time and extra peak memory, the
held-out loss and the share of held-out answers that end their turn, before and after; the reward model: time,
extra peak, training and held-out accuracy; best-of-4: time; DPO from the SFT model (12 steps, the 8 helpful pairs, at 1e-4 and 1e-3):
time, extra peak, the pairs' mean margin before/after, held-out loss and stop share of the three stages; prompting: accuracy per style on the base model and
after SFT, in Korean and English.
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from measure import PeakMemory  # noqa: E402

from explorer import adapting, alignment, models, prompting  # noqa: E402


def main() -> None:
    memory = PeakMemory()
    gemma = models.load(models.GEMMA3)
    data = alignment.bundled()
    before = alignment.behaviour(gemma, data["held_out"])
    rest = memory.reset()
    started = time.perf_counter()
    adapter = alignment.train_sft(gemma, data["sft"], adapting.LoraSettings(rank=8, steps=8, learning_rate=1e-3))
    seconds, peak = time.perf_counter() - started, memory.peak - rest
    tuned = adapting.with_adapter(gemma, adapter)
    after = alignment.behaviour(tuned, data["held_out"])
    print(f"SFT, 8 steps on {len(data['sft'])} instructions: {seconds:.1f} s (target <= 75 s), extra peak "
          f"{peak / 2**20:.0f} MB; training loss {adapter.losses[0]:.2f} -> {adapter.losses[-1]:.2f}")
    print(f"  held-out ({len(data['held_out'])}): loss {before.loss:.2f} -> {after.loss:.2f}; answers that end their "
          f"turn {before.stop_share:.0%} -> {after.stop_share:.0%}")
    for instruction, answer in zip(data["held_out"], after.answers):
        print(f"    {instruction.instruction!r} -> {answer!r}")
    rest = memory.reset()
    started = time.perf_counter()
    reward = alignment.train_reward(gemma, data["preferences"], data["preferences_held_out"])
    print(f"reward model on {len(data['preferences'])} pairs: {time.perf_counter() - started:.1f} s, extra peak "
          f"{(memory.peak - rest) / 2**20:.0f} MB; accuracy train {reward.train_accuracy:.0%}, held-out "
          f"{reward.held_out_accuracy:.0%}")
    started = time.perf_counter()
    found = alignment.best_of_n(tuned, gemma, reward, "일본의 수도는 어디인가요?", n=4)
    print(f"best-of-4 from the SFT model: {time.perf_counter() - started:.1f} s; kept {found.answers[found.best]!r} "
          f"(rewards {found.rewards.round(2).tolist()})")
    pairs = data["preferences"][:alignment.MAX_PAIRS]
    for rate in (1e-4, 1e-3):  # the page's default for a base model, and a chat model's
        rest = memory.reset()
        started = time.perf_counter()
        dpo = alignment.train_dpo(gemma, pairs, alignment.DpoSettings(steps=12, learning_rate=rate), start=adapter)
        seconds, peak = time.perf_counter() - started, memory.peak - rest
        preferred = adapting.with_adapter(gemma, dpo)
        print(f"DPO from the SFT model, 12 steps at {rate:g} on {len(pairs)} pairs: {seconds:.1f} s (target <= 75 s), "
              f"extra peak {peak / 2**20:.0f} MB; loss {dpo.losses[0]:.3f} -> {dpo.losses[-1]:.3f}; mean margin "
              f"{alignment.log_prob_margins(tuned, pairs).mean():.1f} -> {alignment.log_prob_margins(preferred, pairs).mean():.1f}")
        final = alignment.behaviour(preferred, data["held_out"])
        for name, measured in (("base", before), ("SFT", after), ("DPO", final)):
            print(f"  {name}: held-out loss {measured.loss:.2f}, answers that end their turn {measured.stop_share:.0%}")
        for instruction, answer in zip(data["held_out"], final.answers):
            print(f"    DPO {instruction.instruction!r} -> {answer!r}")
    for name, model in (("base", gemma), ("SFT", tuned)):
        for language in ("ko", "en"):
            started = time.perf_counter()
            measured = prompting.measure_all(model, language)
            print(f"prompting on the {name} model, {language} ({time.perf_counter() - started:.0f} s): " + ", ".join(
                f"{m.style}{'/' + m.order if m.order else ''} {m.accuracy:.0%}" for m in measured))


if __name__ == "__main__":
    main()
