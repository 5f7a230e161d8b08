"""Adapting the decoder without changing it: LoRA (and QLoRA on a quantized copy), the chat template that SFT taught, preference tuning (DPO), and
prompting, the way to steer a model without training it."""

from pages.common import page, require_model
from pages.views import alignment, api, finetune, prompting, qlora

page(*finetune.PARAMS, *qlora.PARAMS, *api.PARAMS, *alignment.PARAMS, *prompting.PARAMS, title="nav_finetune", intro="finetune_intro")
loaded = require_model(decoder=True)
{"lora": finetune.lora, "qlora": qlora.qlora_training, "chat": finetune.chat_template, "api": api.api_call, "sft": alignment.sft, "reward": alignment.reward,
 "dpo": alignment.preference, "prompt": prompting.prompting_styles}[finetune.part()](loaded)
