"""Fine-tuning the decoder without changing it: LoRA, the chat template that SFT taught, preference tuning (DPO)."""

from pages.common import page, require_model
from pages.views import finetune

page(*finetune.PARAMS, title="nav_finetune", intro="finetune_intro")
loaded = require_model(decoder=True)
{"lora": finetune.lora, "chat": finetune.chat_template, "dpo": finetune.preference}[finetune.part()](loaded)
