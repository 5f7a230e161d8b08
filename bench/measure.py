"""What the benches share: a resident-memory sampler and the best warm rerun of a page."""

import threading
import time

import psutil


class PeakMemory:
    """Samples this process's resident memory every 5 ms while in use; `peak` is the largest seen."""

    def __init__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.lifetime_peak = self.peak
        self._running = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self._running:
            rss = self.process.memory_info().rss
            self.peak = max(self.peak, rss)
            self.lifetime_peak = max(self.lifetime_peak, rss)
            time.sleep(0.005)

    def reset(self) -> int:
        self.peak = self.process.memory_info().rss
        return self.peak


def best_warm_rerun(app, repeats: int = 3) -> float:
    """Seconds for the fastest of `repeats` reruns of an AppTest page that has already run once (nothing new to
    compute: what a visitor waits for after a click that changes nothing)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
    return min(times)
