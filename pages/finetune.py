"""Fine-tuning the decoder without changing it: LoRA, the chat template that SFT taught, preference tuning (DPO)."""

import streamlit as st

from pages.common import page, require_model, tr
from pages.views import finetune

page(*finetune.PARAMS)

st.title(tr("nav_finetune"))
st.write(tr("finetune_intro"))
loaded = require_model(decoder=True)
{"lora": finetune.lora, "chat": finetune.chat_template, "dpo": finetune.preference}[finetune.part()](loaded)
