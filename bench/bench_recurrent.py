"""RNN vs Transformer figures (issue 6), measured in one run:

- the page's measured curves: time the first time (budget 10 s) and from cache afterwards;
- the log-log slopes of forward time against length (GRU ≈ 1; attention ≈ 2 at long lengths);
- training throughput and per-byte generation latency, GRU against Transformer;
- the shipped pair's training time (budget 10 min), held-out loss and recall by distance.

    python3 bench/bench_recurrent.py
"""

import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer import recurrent  # noqa: E402


def main() -> None:
    rnn, transformer, record = recurrent.load_pair()
    cached = lru_cache(maxsize=1)(lambda: recurrent.measure(rnn, transformer))  # what st.cache_data does for the page
    started = time.perf_counter()
    measured = cached()
    first = time.perf_counter() - started
    started = time.perf_counter()
    cached()
    again = time.perf_counter() - started
    print(f"page measurements: first {first:.2f} s = {first / 10:.2f} of the 10 s budget; from cache {again * 1e6:.0f} µs")
    slope = recurrent.loglog_slope
    print(f"forward time vs length, log-log slope: GRU {slope(recurrent.LENGTHS, measured['rnn_forward']):.2f} "
          f"({recurrent.LENGTHS[0]}–{recurrent.LENGTHS[-1]}), GRU {slope(recurrent.ATTENTION_LENGTHS, measured['rnn_long']):.2f} "
          f"({recurrent.ATTENTION_LENGTHS[0]}–{recurrent.ATTENTION_LENGTHS[-1]}); Transformer whole forward "
          f"{slope(recurrent.LENGTHS, measured['transformer_forward']):.2f} ({recurrent.LENGTHS[0]}–{recurrent.LENGTHS[-1]}); "
          f"attention alone {slope(recurrent.ATTENTION_LENGTHS, measured['attention'], 3):.2f} (last three, up to "
          f"{recurrent.ATTENTION_LENGTHS[-1]})")
    for name, times in (("GRU", measured["rnn_forward"]), ("Transformer", measured["transformer_forward"])):
        print(f"  {name:<11} " + "  ".join(f"{n}: {t * 1000:.1f} ms" for n, t in zip(recurrent.LENGTHS, times)))
    print(f"training throughput: GRU {measured['rnn_train']:,.0f} tokens/s, Transformer {measured['transformer_train']:,.0f} "
          f"tokens/s ({measured['transformer_train'] / measured['rnn_train']:.1f}x)")
    latency = measured["latency"]
    print(f"per-token generation at positions 16 / 512: GRU {latency['rnn'][0] * 1000:.2f} / {latency['rnn'][-1] * 1000:.2f} ms, "
          f"Transformer with KV cache {latency['transformer'][0] * 1000:.2f} / {latency['transformer'][-1] * 1000:.2f} ms")
    seconds = record["gru"]["seconds"] + record["transformer"]["seconds"]
    print(f"training both (python3 -m explorer.recurrent, {record['config']['steps']} steps each): {seconds:.0f} s = "
          f"{seconds / 600:.2f} of the 10 min budget")
    for name in ("gru", "transformer"):
        entry = record[name]
        print(f"{name}: {entry['parameters']:,} parameters, trained {entry['seconds']:.0f} s, held-out loss "
              f"{entry['held_out_loss']:.3f} (unigram {record['unigram_loss']:.3f}), recall {entry['recall']}")


if __name__ == "__main__":
    main()
