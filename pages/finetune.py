"""Fine-tuning the decoder without changing it: LoRA, the chat template that SFT taught, preference tuning (DPO)."""

import streamlit as st

from pages.common import page, require_model, tr, translated, url_state, one_of
from pages.views import finetune

PARTS = ("lora", "chat", "dpo")
page("part", "lpreset", "lrank", "lsteps", "llr", "lseed", "chatq", "dpreset", "dsteps", "beta", "dseed")

st.title(tr("nav_finetune"))
st.write(tr("finetune_intro"))
loaded = require_model(decoder=True)
part = st.segmented_control(tr("finetune_part"), PARTS, format_func=translated("finetune_part_"), required=True,
                            key=url_state("part", "lora", one_of(PARTS)))
{"lora": finetune.lora, "chat": finetune.chat_template, "dpo": finetune.preference}[part or "lora"](loaded)
