"""Adapting the decoder without changing it: LoRA, the chat template that SFT taught, preference tuning (DPO), and
prompting, the way to steer a model without training it."""

from pages.common import page, require_model
from pages.views import alignment, api, finetune, prompting

page(*finetune.PARAMS, *api.PARAMS, *alignment.PARAMS, *prompting.PARAMS, title="nav_finetune", intro="finetune_intro")
loaded = require_model(decoder=True)
{"lora": finetune.lora, "chat": finetune.chat_template, "api": api.api_call, "sft": alignment.sft, "reward": alignment.reward,
 "dpo": alignment.preference, "prompt": prompting.prompting_styles}[finetune.part()](loaded)
