"""The interpretability lab on 2 CPU cores (issue 16).

    python3 bench/bench_lab.py

Targets: attribution <= 1 s for a 20-token prompt; the 30 × 9 head-ablation sweep <= 30 s; the layer × position
patching map for a 10-token pair <= 20 s; warm reruns of the page <= 0.5 s (a rerun with nothing new to compute).
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer import interpret, models  # noqa: E402
from measure import best_warm_rerun  # noqa: E402

PROMPT = "When Mary and John went to the big store on a sunny afternoon, John gave a cold drink to"  # 20 tokens
CLEAN, CORRUPT = "The Eiffel Tower is located in the city of", "The Colosseum is located in the city of"


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> None:
    loaded = models.load(models.SMOLLM2)
    ids = interpret.prompt_ids(loaded, PROMPT)
    target = interpret.target_id(loaded, ids, "")
    interpret.attribute(loaded, ids, target)  # first call pays for allocations once
    seconds = min(timed(interpret.attribute, loaded, ids, target)[0] for _ in range(3))
    print(f"attribution, {len(ids)}-token prompt: {seconds:.3f} s (target <= 1 s)")
    seconds, heads = timed(interpret.head_sweep, loaded, ids, target)
    print(f"head-ablation sweep {heads.shape[0]} x {heads.shape[1]}: {seconds:.1f} s (target <= 30 s)")
    seconds, _ = timed(interpret.part_sweep, loaded, ids, target)
    print(f"layer / attention / MLP sweep (3 x 30): {seconds:.1f} s")
    clean, corrupt = interpret.same_length(loaded, CLEAN, CORRUPT)
    seconds, found = timed(interpret.patch_residual_sweep, loaded, clean, corrupt)
    print(f"layer x position patching map, {len(clean)}-token pair ({found.recovered.shape[0]} x {found.recovered.shape[1]}): "
          f"{seconds:.1f} s (target <= 20 s)")
    seconds, _ = timed(interpret.patch_head_sweep, loaded, clean, corrupt, len(clean) - 1)
    print(f"per-head patching at the last position: {seconds:.1f} s")
    text = (ROOT / "assets" / "sample_long.txt").read_text(encoding="utf-8")
    seconds, _ = timed(interpret.layer_removal, loaded, text, 128)
    print(f"perplexity per removed layer, 128 tokens x 31 runs: {seconds:.1f} s")
    for tool in ("attribute", "ablate", "steer"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.query_params.update({"lang": "ko", "tool": tool})
        at.switch_page("pages/lab.py").run()
        assert not at.exception, [e.value for e in at.exception]
        print(f"page, tool={tool}: warm rerun {best_warm_rerun(at):.2f} s (target <= 0.5 s)")


if __name__ == "__main__":
    main()
