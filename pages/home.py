"""Home: what each page shows, and where today's models come from."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import figures
from explorer.i18n import glossary
from pages.common import page, lang, show_figure, tr

HISTORY = json.loads((Path(__file__).parent.parent / "assets" / "history.json").read_text(encoding="utf-8"))
BUNDLED_SIZES = [("SmolLM2-135M", 2024, 134_515_008), ("MiniLM-L6", 2021, 22_713_216)]  # counted from the loaded weights
page()

st.title(tr("app_title"))
st.write(tr("home_intro"))

st.header(tr("home_pages"))
st.markdown(f"- {tr('home_page_tokens')}\n- {tr('home_page_embeddings')}\n- {tr('home_page_inside')}\n- {tr('home_page_attention')}\n- {tr('home_page_predict')}\n- {tr('home_page_recurrent')}"
            f"\n- {tr('home_page_transfer')}\n- {tr('home_page_finetune')}\n- {tr('home_page_rag')}"
            f"\n- {tr('home_page_quantize')}\n- {tr('home_page_lab')}")
st.caption(tr("link_hint"))

st.header(tr("home_history"))
events = HISTORY["events"]
show_figure(
    figures.timeline([e["year"] for e in events], [e.get(f"name_{lang()}", e["name"]) for e in events],
                     [e[lang()] for e in events], tr("timeline_title")),
    "timeline", pd.DataFrame([{"year": e["year"], "name": e["name"], "note": e[lang()]} for e in events]), key="timeline",
)
ours = [(f"{name} ({tr('ours')})", year, count) for name, year, count in BUNDLED_SIZES]
sizes = [(s["name"], s["year"], s["parameters"]) for s in HISTORY["sizes"]] + ours
names, years, counts = zip(*sizes)
show_figure(
    figures.parameter_chart(list(names), list(years), list(counts), [i >= len(HISTORY["sizes"]) for i in range(len(names))],
                            tr("params_title"), tr("params"), tr("year")),
    "parameters", pd.DataFrame({"model": names, "year": years, "parameters": counts}), key="parameters",
)
st.caption(tr("home_history_note"))
with st.expander(tr("home_sources")):
    entries = [(e["year"], e["name"], e["source"]) for e in events] + [(s["year"], s["name"], s["source"]) for s in HISTORY["sizes"]]
    st.markdown("\n".join(f"- {year} · {name}: [{source['title']}]({source['url']})" for year, name, source in entries))

st.header(tr("home_glossary"), anchor="glossary")
st.caption(tr("home_glossary_intro"))
terms = glossary()["terms"]
with st.container(key="glossary"):
    st.table(pd.DataFrame({tr("glossary_korean"): [term["ko"] for term in terms],
                           tr("glossary_english"): [term["en"] for term in terms],
                           tr("glossary_meaning"): [term["about"][lang()] for term in terms]}).set_index(tr("glossary_korean")))
