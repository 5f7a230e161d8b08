"""One Streamlit process under hard input, on each of the three bundled models: memory and time per page, the
memory budget's reloads, warm reruns, and Gemma's load and conversion times (issues 11, 23).

    python3 bench/bench_memory.py
    EXPLORER_MEMORY_BUDGET_MB=1500 python3 bench/bench_memory.py     # a smaller budget: slower, more reloads

Every page runs under AppTest in this process, as the one server process on Streamlit Cloud runs every visitor's
page. For each model, page and text, (a) 3,000 Hangul syllables of one repeated sentence and (b) a 4,000-character
mixed Korean/English text, it prints the extra resident memory (peak during the run minus before it) and the time
to the first view. Then the resident memory at rest after the walk (freed memory handed back), the peak, the
budget's residents and how many it dropped to make room, the resident memory once the budget's idle sweep has
dropped what nobody uses (its idle time shortened to 5 s), and last Gemma's load from the converted cache and a
first conversion of its GGUF.
"""

import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A fresh capture cache, so that first views compute; the converted SmolLM2 is reused from the usual cache.
_models = Path(os.environ.get("EXPLORER_CACHE_DIR", Path.home() / ".cache" / "llm-explorer")) / "models"
os.environ["EXPLORER_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-memory-")
if _models.exists():
    (Path(os.environ["EXPLORER_CACHE_DIR"]) / "models").symlink_to(_models)

from streamlit.testing.v1 import AppTest  # noqa: E402

from explorer import activations, memory as budget, models, process  # noqa: E402
from measure import PeakMemory, best_warm_rerun  # noqa: E402
from pages.views import warm_up  # noqa: E402

APP = str(ROOT / "app.py")
PAGES = {  # page file (and its address) -> the key of its main text input (None: the page takes no text)
    "home": ("pages/home.py", None),
    "tokens": ("pages/tokens.py", "ttext"),
    "embeddings": ("pages/embeddings.py", "etext"),
    "inside": ("pages/inside.py", "text"),
    "attention": ("pages/attention.py", "atext"),
    "predict": ("pages/predict.py", "ptext"),
    "recurrent": ("pages/recurrent.py", "rtext"),
    "quantize": ("pages/quantize.py", "qtext"),
    "rag": ("pages/rag.py", "rag_documents"),
    "rag lesson": ("pages/lessons.py?lesson=rag&step=5", "rag_documents"),  # the earlier stages, in their tab
}
MODELS = (models.SMOLLM2, models.GEMMA3, models.MINILM)
SKIPPED = {(models.GEMMA3, "embeddings"),  # its 262,144-token vocabulary map is built live today (issue 24 ships it)
           (models.MINILM, "predict"), (models.MINILM, "rag")}  # an encoder: these pages need a decoder
SENTENCE = "고양이가 창가에 앉아 따뜻한 햇볕을 쬐며 조용히 잠을 잔다"


def hangul_text(syllables: int) -> str:
    """The sentence repeated, cut right after its `syllables`-th Hangul syllable."""
    text, count = [], 0
    while count < syllables:
        for character in SENTENCE + " ":
            text.append(character)
            count += "가" <= character <= "힣"
            if count == syllables:
                break
    return "".join(text)


MIXED = ("언어 모델은 다음 토큰을 예측합니다. A language model predicts the next token, one at a time. "
         "어텐션은 앞의 토큰을 봅니다 🙂 Attention looks back. ") * 40
TEXTS = {"a: 3,000 Hangul syllables": hangul_text(3000), "b: 4,000 mixed characters": MIXED[:4000]}


def open_page(page: str, **query) -> AppTest:
    """The page as a new visitor opens it (`page` may carry its address: "pages/lessons.py?lesson=rag")."""
    page, _, address = page.partition("?")
    at = AppTest.from_file(APP, default_timeout=600)
    at.query_params.update({"lang": "ko", **dict(parse_qsl(address)), **query})
    if not address:  # a visitor who comes in through the home page; an address is a deep link to the page itself
        at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def apply_server_settings() -> None:
    """What `streamlit run` does at start and AppTest does not: the st.cache_data bound of .streamlit/config.toml."""
    os.chdir(ROOT)  # where Streamlit reads .streamlit/config.toml
    from streamlit.runtime.caching.global_cache_budget import reconfigure_global_cache_budget_from_config

    reconfigure_global_cache_budget_from_config()


def cached_data_bytes() -> int:
    """Every st.cache_data entry's pickled bytes (outside the memory budget, bounded by server.maxCacheDataSize)."""
    from streamlit.runtime.caching import get_data_cache_stats_provider

    return sum(stat.byte_length for stats in get_data_cache_stats_provider().get_stats().values() for stat in stats)


def at_rest(memory: PeakMemory) -> float:
    """Resident GB once every visitor has left and freed memory is handed back."""
    gc.collect()
    process.release_freed_memory()
    return memory.process.memory_info().rss / 2**30


def main() -> None:
    apply_server_settings()
    memory = PeakMemory()
    started = time.perf_counter()
    warm_up.start(wait=True)
    print(f"the work a server does once in the background at start (pages/views/warm_up.py): "
          f"{time.perf_counter() - started:.1f} s, resident after {memory.process.memory_info().rss / 2**30:.2f} GB")
    print("first views on a fresh process (every page once on each model, as a running server is visited)")
    started = time.perf_counter()
    for model in MODELS:
        for name, (page, _) in PAGES.items():
            if (model, name) not in SKIPPED:
                opened = time.perf_counter()
                open_page(page, model=model)
                print(f"    {model:<13} {name:<11} {time.perf_counter() - opened:6.2f} s   "
                      f"(resident after: {memory.process.memory_info().rss / 2**30:.2f} GB)", flush=True)
    print(f"warm-up (every page once on each model): {time.perf_counter() - started:.1f} s, "
          f"peak {memory.lifetime_peak / 2**30:.2f} GB, at rest after {at_rest(memory):.2f} GB, "
          f"budget {budget.BUDGET.limit / 2**20:,.0f} MB, reloads so far {budget.BUDGET.dropped}", flush=True)

    print("\nhard input: extra resident memory (peak - before) and time to first view, on one shared process")
    worst = {}
    for model in MODELS:
        for label, text in TEXTS.items():
            hangul = sum("가" <= c <= "힣" for c in text)
            print(f"  {model}, text {label} ({len(text):,} characters, {hangul:,} Hangul syllables)", flush=True)
            for name, (page, key) in PAGES.items():
                if key is None or (model, name) in SKIPPED:
                    continue
                at = open_page(page, model=model)
                assert any(area.key == key for area in at.text_area), [e.value for e in at.error]  # said why not
                before = memory.reset()
                started = time.perf_counter()
                at.text_area(key=key).set_value(text).run()
                seconds = time.perf_counter() - started
                assert not at.exception, [e.value for e in at.exception]
                del at  # the visitor leaves: their session's state goes, as a closed tab's does on the server
                gc.collect()
                extra = (memory.peak - before) / 2**20
                worst[model, name] = max(worst.get((model, name), 0), extra)
                resting = memory.process.memory_info().rss / 2**30
                print(f"    {name:<11} +{extra:6.0f} MB   {seconds:6.2f} s   (resident after: {resting:.2f} GB)", flush=True)

    print("\nwarm rerun of the whole page (default text, SmolLM2, nothing new to compute), best of 3")
    for name, (page, _) in PAGES.items():
        print(f"    {name:<11} {best_warm_rerun(open_page(page)):.2f} s", flush=True)

    place = max(worst, key=worst.get)
    print(f"\nworst extra memory on any page: {worst[place]:.0f} MB ({place[1]} on {place[0]})")
    print(f"process peak resident memory, warm-up and the whole walk: {memory.lifetime_peak / 2**30:.2f} GB")
    print(f"at rest after the walk: {at_rest(memory):.2f} GB")
    print(f"budget {budget.BUDGET.limit / 2**20:,.0f} MB; residents now: "
          + ", ".join(f"{model} {(own + extra) / 2**20:,.0f} MB" for model, own, _, extra in budget.by_model(budget.BUDGET.residents())))
    print(f"residents dropped to make room (reloads): {budget.BUDGET.dropped}")
    idle_minutes = budget.BUDGET.idle_seconds / 60
    budget.BUDGET.expire_after(5.0)  # the budget's own sweep, its idle time shortened from EXPLORER_IDLE_MINUTES
    deadline = time.monotonic() + 120
    while any(not r.pinned for r in budget.BUDGET.residents()) and time.monotonic() < deadline:
        time.sleep(1)
    print(f"at rest once nobody has used a resident for the idle time (here 5 s; {idle_minutes:g} minutes by "
          f"default): {at_rest(memory):.2f} GB; residents now: "
          + (", ".join(f"{model} {(own + extra) / 2**20:,.0f} MB" for model, own, _, extra in
                       budget.by_model(budget.BUDGET.residents())) or "none"))
    print(f"outside the budget: st.cache_data {cached_data_bytes() / 2**20:,.0f} MB, capture cache "
          f"{activations.default_cache().memory_used() / 2**20:,.0f} MB")

    budget.BUDGET.drop(("model", models.GEMMA3))
    gc.collect()
    started = time.perf_counter()
    models.load(models.GEMMA3)
    print(f"\nGemma 3 270M from the converted cache: {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as scratch:
        before = at_rest(memory) * 2**30
        memory.reset()
        started = time.perf_counter()
        models.convert_gguf(models.GEMMA3, Path(scratch) / "gemma3")
        print(f"Gemma 3 270M first conversion (join, dequantize, save): {time.perf_counter() - started:.1f} s, "
              f"peak {memory.peak / 2**30:.2f} GB (+{(memory.peak - before) / 2**20:,.0f} MB over {before / 2**30:.2f} GB)")


if __name__ == "__main__":
    main()
