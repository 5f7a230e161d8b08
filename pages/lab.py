"""Interpretability lab: attribute, ablate, patch, steer, and break it."""

from pathlib import Path

from pages.common import page, require_model
from pages.views import lab

page(*lab.PARAMS, title="nav_lab", intro="lab_intro")
loaded = require_model(decoder=True)
tool = lab.tool()
if tool in ("attribute", "ablate"):
    chosen = lab.prompt(loaded)
    if chosen is not None:
        (lab.attribution if tool == "attribute" else lab.ablation)(loaded, *chosen)
elif tool == "patch":
    lab.patching(loaded)
elif tool == "steer":
    lab.steering(loaded)
else:
    lab.break_it(loaded, (Path(__file__).resolve().parents[1] / "assets" / "sample_long.txt").read_text(encoding="utf-8"))
