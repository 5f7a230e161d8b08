"""Tests run on the real bundled models, offline. The converted SmolLM2 cache is shared by the whole run."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub, wherever they run
os.environ.setdefault("EXPLORER_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache"))
# The test process holds its fixtures' models outside the budget and switches models far more often than a class:
# a larger budget spares it reloads. The deployed default is measured by bench/bench_memory.py.
os.environ.setdefault("EXPLORER_MEMORY_BUDGET_MB", "1700")
os.environ.setdefault("EXPLORER_WARM_UP", "0")  # no background work at start: each test measures its page's own path
if os.environ.get("PYTEST_XDIST_WORKER"):  # two test processes share the cores (pyproject.toml): one thread each, for
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # torch here and in the servers they start, else they oversubscribe
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest  # noqa: E402

from explorer import models  # noqa: E402

pytest_plugins = ["browsing"]  # the browser tests' server and chromium fixtures


@pytest.fixture(scope="session")
def smollm():
    return models.load(models.SMOLLM2, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def minilm():
    return models.load(models.MINILM, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def gemma():
    """Gemma 3 270M, the base model (converted from its package's GGUF once per cache: about a minute)."""
    return models.load(models.GEMMA3, device="cpu", dtype="float32")
