"""History views: where today's models come from, how their size grew, and the glossary."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import figures
from explorer.i18n import glossary
from pages.common import lang, show_figure, tr

HISTORY = json.loads((Path(__file__).resolve().parents[2] / "assets" / "history.json").read_text(encoding="utf-8"))
BUNDLED_SIZES = [("SmolLM2-135M", 2024, 134_515_008), ("MiniLM-L6", 2021, 22_713_216)]  # counted from the loaded weights


def timeline() -> None:
    events = HISTORY["events"]
    show_figure(
        figures.timeline([e["year"] for e in events], [e.get(f"name_{lang()}", e["name"]) for e in events],
                         [e[lang()] for e in events], tr("timeline_title")),
        "timeline", pd.DataFrame([{"year": e["year"], "name": e["name"], "note": e[lang()]} for e in events]), key="timeline",
    )


def sizes() -> None:
    """Parameter counts from GPT-1 to today, the bundled models among them, with the sources."""
    ours = [(f"{name} ({tr('ours')})", year, count) for name, year, count in BUNDLED_SIZES]
    rows = [(s["name"], s["year"], s["parameters"]) for s in HISTORY["sizes"]] + ours
    names, years, counts = zip(*rows)
    show_figure(
        figures.parameter_chart(list(names), list(years), list(counts), [i >= len(HISTORY["sizes"]) for i in range(len(names))],
                                tr("params_title"), tr("params"), tr("year")),
        "parameters", pd.DataFrame({"model": names, "year": years, "parameters": counts}), key="parameters",
    )
    st.caption(tr("home_history_note"))
    with st.expander(tr("home_sources")):
        entries = [(e["year"], e["name"], e["source"]) for e in HISTORY["events"]] + \
            [(s["year"], s["name"], s["source"]) for s in HISTORY["sizes"]]
        st.markdown("\n".join(f"- {year} · {name}: [{source['title']}]({source['url']})" for year, name, source in entries))


def glossary_table() -> None:
    st.caption(tr("home_glossary_intro"))
    terms = glossary()["terms"]
    with st.container(key="glossary"):
        st.table(pd.DataFrame({tr("glossary_korean"): [term["ko"] for term in terms],
                               tr("glossary_english"): [term["en"] for term in terms],
                               tr("glossary_meaning"): [term["about"][lang()] for term in terms]}).set_index(tr("glossary_korean")))
