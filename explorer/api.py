"""What an API call carries: a chat-completions request (messages, model, temperature) answered by the local model,
the response with its usage counted by the model's own tokenizer, and what the same request costs in Korean and in
English at a per-token price.

The JSON is the shape of the chat-completions APIs (OpenAI's and the many that copy it). Nothing leaves the machine:
the "server" is the loaded instruction-tuned model. `prompt_tokens` counts the ids the chat template gives the
messages, the same ids the model reads; `completion_tokens` counts the ids it wrote, its end-of-turn marker too (the
marker is generated, so it is billed)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from explorer import prediction
from explorer.adapting import answer_stop_ids
from explorer.activations import CaptureError
from explorer.models import LoadedModel

MAX_MESSAGE_CHARS = 4_000  # longer is refused with the length, the text kept
MAX_COMPLETION_TOKENS = 128
MAX_PROMPT_TOKENS = 1_024  # a request's tokens in the chat template: 3,000 Hangul syllables are ~7,000 SmolLM2 tokens
MAX_TEMPERATURE = 2.0  # the APIs' own range
PER_MILLION = 1_000_000


@dataclass
class ApiCall:
    request: dict
    response: dict
    prompt_ids: list[int]
    completion_ids: list[int]


def check_request(messages: list[dict], temperature: float, max_tokens: int) -> None:
    """Refused with a reason, as an API would answer 400: no user text, too long, settings out of range."""
    if not any(m["content"].strip() for m in messages if m["role"] == "user"):
        raise CaptureError("empty_text")
    longest = max(len(m["content"]) for m in messages)
    if longest > MAX_MESSAGE_CHARS:
        raise CaptureError("example_too_long", f"{longest:,} > {MAX_MESSAGE_CHARS:,}")
    if not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
        raise CaptureError("bad_temperature", f"0–{MAX_TEMPERATURE:g}")
    if not 1 <= max_tokens <= MAX_COMPLETION_TOKENS:
        raise CaptureError("bad_steps", f"1–{MAX_COMPLETION_TOKENS}")


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def chat_completion(loaded: LoadedModel, messages: list[dict], temperature: float = 0.7, max_tokens: int = 64,
                    seed: int = 0) -> ApiCall:
    """The request, then the local model's answer as a chat-completions response."""
    check_request(messages, temperature, max_tokens)
    if not getattr(loaded.tokenizer, "chat_template", None):
        raise CaptureError("not_available", "chat template")
    request = {"model": loaded.info.key, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
    ids = prompt_ids(loaded.tokenizer, messages)
    if len(ids) > MAX_PROMPT_TOKENS:  # refused, as an API answers a request over its context: never run
        raise CaptureError("request_too_long", f"{len(ids):,} > {MAX_PROMPT_TOKENS:,}")
    stop = answer_stop_ids(loaded)
    written, _ = prediction.generate_ids(loaded, ids, max_tokens, temperature, seed=seed, stop_ids=stop)
    finished = bool(written) and written[-1] in stop
    content = loaded.tokenizer.decode([i for i in written if i not in stop], skip_special_tokens=True).strip()
    response = {
        "id": f"chatcmpl-local-{seed}", "object": "chat.completion", "created": int(time.time()), "model": loaded.info.key,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop" if finished else "length"}],
        "usage": {"prompt_tokens": len(ids), "completion_tokens": len(written), "total_tokens": len(ids) + len(written)},
    }
    return ApiCall(request, response, ids, written)


def parse_price(text: str) -> float | None:
    """A price per million tokens as typed ('0.15', '$2.50', '1,25'); None when it is not a price."""
    try:
        value = float(text.strip().lstrip("$").replace(",", ".").replace(" ", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 <= value <= 10_000 else None


def cost(prompt_tokens: int, completion_tokens: int, price_in: float, price_out: float) -> float:
    """Dollars for one call at prices per million input and output tokens."""
    return (prompt_tokens * price_in + completion_tokens * price_out) / PER_MILLION
