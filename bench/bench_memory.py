"""One Streamlit process under hard input: memory and time per page, and warm reruns (issue 11).

    python3 bench/bench_memory.py

Every page runs under AppTest in this process, as the one server process on Streamlit Cloud runs every visitor's
page. For each page and each text, (a) 3,000 Hangul syllables of one repeated sentence and (b) a 4,000-character
mixed Korean/English text, it prints the extra resident memory (peak during the run minus before it) and the time
to the first view. Then, on each page's default text, the whole-page rerun time when nothing new must be computed
(best of 3), and last the process's peak resident memory after all of it.
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

from measure import PeakMemory, best_warm_rerun  # noqa: E402

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


def main() -> None:
    memory = PeakMemory()
    started = time.perf_counter()
    for page, _ in PAGES.values():  # load both models and warm every page once, as a running server would be
        open_page(page)
        open_page(page, model="minilm-l6")
    print(f"warm-up (models loaded, every page once): {time.perf_counter() - started:.1f} s, "
          f"peak {memory.lifetime_peak / 2**30:.2f} GB, resident after {memory.reset() / 2**30:.2f} GB")
    memory.lifetime_peak = memory.peak

    print("\nhard input: extra resident memory (peak - before) and time to first view, on one shared process")
    worst = {}
    for label, text in TEXTS.items():
        hangul = sum("가" <= c <= "힣" for c in text)
        print(f"  text {label} ({len(text):,} characters, {hangul:,} Hangul syllables)")
        for name, (page, key) in PAGES.items():
            if key is None:
                continue
            at = open_page(page)
            before = memory.reset()
            started = time.perf_counter()
            at.text_area(key=key).set_value(text).run()
            seconds = time.perf_counter() - started
            assert not at.exception, [e.value for e in at.exception]
            del at  # the visitor leaves: their session's state goes, as a closed tab's does on the server
            gc.collect()
            extra = (memory.peak - before) / 2**20
            worst[name] = max(worst.get(name, 0), extra)
            resting = memory.process.memory_info().rss / 2**30
            print(f"    {name:<11} +{extra:6.0f} MB   {seconds:6.2f} s   (resident after: {resting:.2f} GB)")

    print("\nwarm rerun of the whole page (default text, nothing new to compute), best of 3")
    for name, (page, _) in PAGES.items():
        print(f"    {name:<11} {best_warm_rerun(open_page(page)):.2f} s")

    print(f"\nworst extra memory on any page: {max(worst.values()):.0f} MB ({max(worst, key=worst.get)})")
    print(f"process peak resident memory after warm-up, through all pages and both texts: "
          f"{memory.lifetime_peak / 2**30:.2f} GB")


if __name__ == "__main__":
    main()
