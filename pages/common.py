"""UI mechanisms every page uses: URL state, the current model, errors, figure and data export.

Not a page itself: app.py lists the pages with st.navigation.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException

from explorer import activations, memory, models, process
from explorer.i18n import DEFAULT_LANGUAGE, t

GLOBAL_PARAMS = ("lang", "model", "present", "fig")


_shell = threading.local()  # a script run happens on one thread: `active` while app.py runs the page


@contextmanager
def app_shell_run():
    """app.py runs the chosen page inside this; a page run outside it came without the shell. However the page ends
    (to the end, st.stop), the parameters it declared with `page` are written into the address. A run that ends in
    st.rerun leaves that to the next run: the browser never receives an address written by a run cut short, and the
    next run, finding the server's copy already equal, would not send it again."""
    _shell.active, _shell.params = True, ()
    rerun = False
    try:
        yield
    except RerunException:
        rerun = True
        raise
    finally:
        _shell.active = False
        if not rerun:
            publish_url(*_shell.params)


def page(*params: str, title: str | None = None, intro: str | None = None) -> None:
    """A page's first line: run inside app.py's shell, keep `params` (its views' URL keys) in the address, and draw
    the strings `title` and `intro` as its heading (an intro may name the sidebar's {model})."""
    ensure_app_shell()
    _shell.params = params
    if title:
        st.title(tr(title))
    if intro:
        st.write(tr(intro, model=setting("model", default_model())))


def working(key: str, **values):
    """A spinner with the string `key`; its elapsed-time counter only in English, the one language Streamlit writes
    it in ("(1.2 seconds)")."""
    return st.spinner(tr(key, **values), show_time=lang() == "en")


def translated(prefix: str, **values):
    """A format_func for options labelled by the strings `prefix + option`, in this run's language."""
    language = lang()
    return lambda option: t(f"{prefix}{option}", language, **values)


def ensure_app_shell() -> None:
    """Run a page inside app.py's shell, also when a deep link is the first request a new server process gets.

    Until st.navigation has run once in a process, Streamlit treats a folder named pages/ as old-style pages and
    would run this file alone, without the sidebar. Switch to st.navigation and rerun: the same URL lands here again.
    Whether this run is inside the shell is asked of the run itself, not of Streamlit's process-wide flag: when
    several first requests arrive together, all but one found the flag already switched and ran without the shell.
    AppTest goes through this rerun on every run, and a button's click does not survive it: keep clicks with on_click.
    """
    if not getattr(_shell, "active", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def setting(name: str, default=None):
    """A URL-backed value: the widget's if it is on screen, else the last one kept for the link."""
    return st.session_state.get(name, st.session_state.get("_keep_" + name, default))


def lang() -> str:
    return setting("lang", DEFAULT_LANGUAGE)


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


# ---------------------------------------------------------------- URL state
# Not bind="query-params" (tried): AppTest never sees its URL change, and a bound value outlives its range (layer 29).

def url_value(name: str, default, cast=str):
    """The value kept for `name`: from the URL the first time, then whatever the page last set. Either way it passes
    `cast` as a link's text would (a value kept by another page or model is no more trusted), or is `default`."""
    keep = "_keep_" + name
    raw = _encode(st.session_state[keep]) if keep in st.session_state else st.query_params.get(name)
    st.session_state[keep] = _accepted(raw, default, cast)
    return st.session_state[keep]


def _accepted(raw, default, cast):
    if raw is None:
        return default
    try:
        return cast(raw)
    except (TypeError, ValueError):
        return default


def keep_value(name: str, value) -> None:
    st.session_state["_keep_" + name] = value


def url_state(name: str, default, cast=str) -> str:
    """Key of a page widget whose value lives in the URL (`?name=value`) and survives moving between pages. The
    widget's own value is checked too: its range may have changed since (another model, a shorter text)."""
    value = url_value(name, default, cast)
    if name in st.session_state:
        value = _accepted(_encode(st.session_state[name]), default, cast)
    if name not in st.session_state or st.session_state[name] != value:
        st.session_state[name] = value
    return name


def publish_url(*names: str) -> None:
    """Write the global settings and this page's `names` into the address bar."""
    wanted = {}
    for name in (*GLOBAL_PARAMS, *names):
        keep = "_keep_" + name
        if name in st.session_state:
            st.session_state[keep] = st.session_state[name]
        if st.session_state.get(keep) is not None:  # an unset choice stays out of the link
            wanted[name] = _encode(st.session_state[keep])
    if dict(st.query_params) != wanted:
        st.query_params.from_dict(wanted)


def _encode(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def bounded(cast, low, high):
    """A URL cast that keeps a hand-edited number inside its widget's range (out of range, a widget raises)."""
    return lambda raw: min(high, max(low, cast(raw)))


def one_of(options, cast=str):
    """A URL cast that accepts only one of a widget's options (anything else falls back to the default)."""
    def parse(raw):
        value = cast(raw)
        if value not in options:
            raise ValueError(raw)
        return value
    return parse


def as_bool(raw: str) -> bool:
    return str(raw).lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------- model

def loading_message(key: str) -> str:
    """The spinner's words while `key` loads: a first conversion takes a minute, a (re)load a few seconds."""
    return tr("converting_model" if models.needs_conversion(key) else "loading_model", model=key)


def current_model(key: str | None = None) -> models.LoadedModel | None:
    """The model named in the sidebar (or `key`), loaded once per process and shared by every session.

    A model that cannot be used (say, a hub id in a link opened offline) is explained and the bundled default is used.
    """
    chosen = key or setting("model", default_model())
    try:
        with st.spinner(loading_message(chosen)):
            return models.shared(chosen)
    except (models.ModelError, memory.OverBudget) as error:
        show_error(error)
        if key is not None or chosen == default_model():
            return None
        keep_value("model", default_model())
        return current_model()


def default_model() -> str:
    """The bundled decoder a learner starts on: one that writes Korean when the app is in Korean."""
    return models.DEFAULT_MODEL[lang()]


def require_model(decoder: bool = False) -> models.LoadedModel:
    """The current model, or the page ends here (its link kept): when none can be used (already explained), or when
    the page needs a decoder and the model is an encoder (said in a sentence)."""
    loaded = current_model()
    if loaded is not None and decoder and loaded.info.family != "decoder":
        st.info(tr("needs_decoder", model=loaded.info.key))
        loaded = None
    if loaded is None:
        st.stop()
    return loaded


def needed(value):
    """`value`, or the page ends here: a view returns None once it has said why it cannot go on."""
    if value is None:
        st.stop()
    return value


def show_error(error) -> None:
    kind = getattr(error, "kind", "unknown_id")
    st.error(tr(f"error_{kind}", detail=getattr(error, "detail", str(error))), icon="⚠️")


HEAVY_SECONDS = 0.2  # a call this long computed something (a cache hit takes milliseconds): return freed memory after it


def compute(function, *args, **kwargs):
    """Run an engine function with a spinner; a refusal (empty text, out of memory…) is shown, never raised: None."""
    started = time.perf_counter()
    try:
        with working("running_model"):
            return function(*args, **kwargs)
    except (activations.CaptureError, memory.OverBudget) as error:
        show_error(error)
    except RuntimeError as error:  # out of memory on a GPU, say
        if "out of memory" not in str(error).lower():
            raise
        show_error(models.ModelError("out_of_memory", str(error)[:80]))
    finally:
        if time.perf_counter() - started > HEAVY_SECONDS:
            process.release_freed_memory()
    return None


def capture_or_explain(loaded: models.LoadedModel, text: str, names, notify_truncation: bool = True,
                **options) -> activations.Capture | None:
    """Capture with a spinner and the engine's cache; a refusal is shown, never raised."""
    result = compute(activations.capture, loaded, text, names, **options)
    if result is not None and result.dropped_tokens and notify_truncation:
        st.warning(tr("truncated", dropped=result.dropped_tokens))
    return result


# ---------------------------------------------------------------- export

@contextmanager
def collecting_figures():
    """Within: every figure show_figure draws in this run is also appended to the yielded list."""
    _shell.figures = []
    try:
        yield _shell.figures
    finally:
        _shell.figures = None


def show_figure(figure, name: str, data: pd.DataFrame | None = None, key: str | None = None) -> None:
    """Draw a figure with its download button (PNG or SVG, from the sidebar) and export its data."""
    image_format = setting("fig", "png")
    if setting("present"):  # a projector needs type readable from the back row
        figure = go.Figure(figure).update_layout(font_size=22, title_font_size=28)
        figure.update_xaxes(tickfont_size=20, title_font_size=22).update_yaxes(tickfont_size=20, title_font_size=22)
    sink = getattr(_shell, "figures", None)
    if sink is not None:  # a lesson collecting its figures for the handout
        sink.append((name, go.Figure(figure)))
    st.plotly_chart(figure, key=key, config={
        "displaylogo": False,
        "toImageButtonOptions": {"format": image_format, "filename": name, "scale": 2},
    })
    if data is not None:
        left, right = st.columns(2)
        # built when clicked, not on every rerun
        left.download_button(tr("download_csv"), lambda: data.to_csv(index=False).encode("utf-8-sig"), f"{name}.csv",
                             "text/csv", key=f"{key or name}_csv")
        right.download_button(tr("download_json"),
                              lambda: data.to_json(orient="records", force_ascii=False).encode("utf-8"),
                              f"{name}.json", "application/json", key=f"{key or name}_json")
