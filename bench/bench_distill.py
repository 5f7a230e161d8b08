"""Distillation on 2 CPU cores (issue 26): the student's held-out accuracy from hard labels and from the teacher at
T = 1, 2, 4, 8, the training time, the parameter counts and the speed ratio, in Korean and in English.

    python3 bench/bench_distill.py

The teacher is Gemma 3's layer-6 sentence vectors with a logistic regression (32 sentences a topic); the students
are the page's: 36 trainings per temperature (6 sizes x hard/soft x 3 seeds).
"""

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from explorer import distill, models, transfer  # noqa: E402


def main() -> None:
    decoder = models.load(models.DEFAULT_MODEL["ko"])
    examples = [n * 4 for n in distill.PER_CLASS]
    for language in transfer.LANGUAGES:
        started = time.perf_counter()
        teacher = distill.teacher(decoder, language)
        print(f"\n{language}: teacher built in {time.perf_counter() - started:.1f} s, held-out accuracy "
              f"{teacher.accuracy:.0%}, {teacher.parameters:,} parameters, "
              f"{teacher.seconds_per_sentence * 1000:.2f} ms a sentence")
        print(f"  examples     {''.join(f'{n:>7}' for n in examples)}")
        for temperature in distill.TEMPERATURES:
            curves = distill.curves(teacher, temperature)
            if temperature == distill.TEMPERATURES[0]:
                print(f"  hard         {''.join(f'{a:>7.0%}' for a in curves.hard)}")
            print(f"  soft T={temperature:<5}{''.join(f'{a:>7.0%}' for a in curves.soft)}   "
                  f"({curves.seconds:.1f} s for 36 students)")
        print(f"  student: {curves.student_parameters:,} parameters, "
              f"{curves.student_seconds_per_sentence * 1000:.3f} ms a sentence; the teacher is "
              f"{teacher.parameters / curves.student_parameters:,.0f}x larger and "
              f"{teacher.seconds_per_sentence / curves.student_seconds_per_sentence:,.0f}x slower")


if __name__ == "__main__":
    main()
