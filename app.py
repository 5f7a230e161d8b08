"""LLM Internals Explorer: entry point, shared sidebar, navigation."""

import time

import streamlit as st

from explorer import memory, models, process, warmup
from explorer.i18n import LANGUAGES, t
from pages.common import (HEAVY_SECONDS, app_shell_run, as_bool, current_model, default_model, keep_value, setting, tr,
                          url_value)
from pages.views import warm_up

process.tune_allocator()  # every page run is a new thread: without this each may keep its own heap
st.set_page_config(page_title=t("app_title", url_value("lang", "ko")), page_icon="🔎", layout="wide")

PRESENTER_CSS = """<style>
.stMarkdown p, .stMarkdown li, .stCaption p, label p, [data-testid="stTable"] td, [data-testid="stTable"] th,
textarea, input { font-size: 1.5rem !important; line-height: 1.5 !important; }
h1 { font-size: 3.2rem !important; } h2 { font-size: 2.4rem !important; } h3 { font-size: 2rem !important; }
header[data-testid="stHeader"], [data-testid="stToolbar"], footer { display: none !important; }
.block-container { padding-top: 1rem !important; max-width: 100% !important; }
</style>"""


def sidebar() -> None:
    # Sidebar widgets carry no key: their value is kept by hand, so a page switch can never reset it.
    languages = list(LANGUAGES)
    language = st.radio("Language · 언어", languages, format_func=LANGUAGES.get, horizontal=True,
                        index=languages.index(url_value("lang", "ko") if url_value("lang", "ko") in languages else "ko"))
    keep_value("lang", language)
    st.subheader(tr("sidebar_model"))
    choices = list(models.BUNDLED)
    chosen = url_value("model", default_model())
    bundled = st.selectbox(tr("sidebar_bundled"), choices, index=choices.index(chosen) if chosen in choices else None,
                           placeholder=tr("sidebar_hub_in_use"), format_func=lambda k: models.BUNDLED[k].hub_id.split("/")[-1])
    if bundled and bundled != chosen:
        keep_value("model", bundled)
    with st.form("hub_model", border=False):
        hub_id = st.text_input(tr("sidebar_hub_id"), value="" if chosen in choices else chosen,
                               placeholder="gpt2", help=tr("sidebar_hub_help"))
        if st.form_submit_button(tr("sidebar_load")) and hub_id.strip():
            _switch_to_hub_model(hub_id.strip())
    keep_value("present", st.toggle(tr("sidebar_presenter"), value=url_value("present", False, as_bool)))
    formats = ["png", "svg"]
    chosen_format = url_value("fig", "png")
    keep_value("fig", st.radio(tr("sidebar_figure_format"), formats, horizontal=True,
                               index=formats.index(chosen_format) if chosen_format in formats else 0))


def _switch_to_hub_model(hub_id: str) -> None:
    """Load first (current_model shows its own spinner); only a model that loaded replaces the current one."""
    if current_model(hub_id) is not None:
        keep_value("model", hub_id)


def _copies(count: int, nbytes: int) -> str:
    """A model's quantized copies in the sidebar's memory line: "(+ 2 copies, 230 MB)", nothing when none."""
    return tr("memory_copy" if count == 1 else "memory_copies", n=count, mb=nbytes / 2**20) if count else ""


def shell() -> None:
    """The sidebar, then the chosen page."""
    with st.sidebar:
        sidebar()
        loaded = current_model()
        if loaded is not None:
            info = loaded.info
            dtype = (tr("dtype_with_table_and_blocks", dtype=info.dtype, table=info.table_dtype) if info.block_dtype
                     else tr("dtype_with_table", dtype=info.dtype, table=info.table_dtype) if info.table_dtype
                     else info.dtype)
            st.caption(tr("sidebar_running_on", device=info.device, dtype=dtype, source=tr(f"source_{info.source}")))
        groups = memory.by_model(memory.BUDGET.residents())  # whoever deploys the app sees where the memory goes
        st.caption(tr("memory_caption", used=memory.BUDGET.used() / 2**20, limit=memory.BUDGET.limit / 2**20,
                      residents=", ".join(f"{model} {own / 2**20:,.0f} MB" + _copies(copies, extra)
                                          for model, own, copies, extra in groups) or tr("memory_none")))

    if setting("present"):
        st.html(PRESENTER_CSS)

    navigation = st.navigation({
        "": [st.Page("pages/home.py", title=tr("nav_home"), icon=":material/home:", url_path="home", default=True)],
        tr("section_built"): [
            st.Page("pages/tokens.py", title=tr("nav_tokens"), icon=":material/segment:", url_path="tokens"),
            st.Page("pages/embeddings.py", title=tr("nav_embeddings"), icon=":material/scatter_plot:", url_path="embeddings"),
            st.Page("pages/inside.py", title=tr("nav_inside"), icon=":material/neurology:", url_path="inside"),
            st.Page("pages/attention.py", title=tr("nav_attention"), icon=":material/visibility:", url_path="attention"),
            st.Page("pages/predict.py", title=tr("nav_predict"), icon=":material/keyboard_double_arrow_right:", url_path="predict"),
            st.Page("pages/recurrent.py", title=tr("nav_recurrent"), icon=":material/compare_arrows:", url_path="recurrent"),
        ],
        tr("section_used"): [
            st.Page("pages/transfer.py", title=tr("nav_transfer"), icon=":material/school:", url_path="transfer"),
            st.Page("pages/finetune.py", title=tr("nav_finetune"), icon=":material/tune:", url_path="finetune"),
            st.Page("pages/rag.py", title=tr("nav_rag"), icon=":material/travel_explore:", url_path="rag"),
            st.Page("pages/quantize.py", title=tr("nav_quantize"), icon=":material/compress:", url_path="quantize"),
        ],
        tr("section_lab"): [
            st.Page("pages/lab.py", title=tr("nav_lab"), icon=":material/science:", url_path="lab"),
        ],
        tr("section_lessons"): [
            st.Page("pages/lessons.py", title=tr("nav_lessons"), icon=":material/co_present:", url_path="lessons"),
        ],
    }, expanded=True)  # 13 pages: folded after 10 by default, which hid the lessons from a lecturer
    with app_shell_run():
        navigation.run()


started = time.perf_counter()
try:
    with memory.BUDGET.run():  # the models and copies this run uses (the sidebar's too) stay resident until it ends
        shell()
finally:
    if time.perf_counter() - started > HEAVY_SECONDS:  # a run that computed: hand freed memory back to the system
        process.release_freed_memory(collect=True)  # Streamlit's own collection after every run is off (config.toml)
    if warmup.enabled():  # the work that is the same for every visitor, once per process, in the background: begun
        warm_up.start()  # after the first visitor's page, which it slowed by 3-10 s on 2 cores (bench_first_views.py)
