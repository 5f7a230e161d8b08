"""Inside the model: its shape, and a map of what every head does on one sentence."""

from pages.common import current_model, page
from pages.views import inside

page(*inside.PARAMS, title="nav_inside", intro="inside_intro")
loaded = current_model()
if loaded is not None:
    inside.shape(loaded)
    inside.head_map(loaded)
