"""How tokens are shown, in one place: byte pieces, special tokens, whitespace and invisible characters.

Byte-level vocabularies (GPT-2, SmolLM2) store bytes as stand-in letters ('Ġ' for a space, 'ì' for 0xEC);
SentencePiece vocabularies (Gemma) write a space as '▁' and fall back to single bytes written '<0xEC>'. Either way a
piece that ends inside a Hangul syllable or an emoji is shown as its bytes (0xEC 0x95) or, where the text is known,
as the whole character it belongs to; never as the stand-ins or as U+FFFD.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

BYTE_GAP = "\u00a0"  # between the bytes of one piece: a plain space would be shown as part of the token


def visible(token: str) -> str:
    """A token as a label: spaces, line breaks and invisible characters shown, so ' Paris' and 'Paris' differ."""
    token = token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return "".join(f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c) in ("Cc", "Cf") else c for c in token) or "∅"


@lru_cache(maxsize=1)
def byte_decoder() -> dict[str, int]:
    """GPT-2's byte-to-letter table reversed: 'Ġ' -> 0x20, 'ì' -> 0xEC."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def piece_bytes(piece: str) -> bytes | None:
    """The bytes behind a byte-level vocabulary entry, or None when it is not one (an added token like <|im_end|>)."""
    table = byte_decoder()
    if piece and all(char in table for char in piece):
        return bytes(table[char] for char in piece)
    return None


BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def sentencepiece_bytes(piece: str) -> bytes:
    """The bytes behind a SentencePiece entry: '<0xEC>' is one byte, '▁서울' is ' 서울' in UTF-8."""
    fallback = BYTE_FALLBACK.fullmatch(piece)
    return bytes([int(fallback.group(1), 16)]) if fallback else piece.replace("▁", " ").encode("utf-8")


def raw_bytes(tokenizer, piece: str) -> bytes | None:
    """The bytes a vocabulary entry stands for, for byte-level and SentencePiece vocabularies; None for WordPiece
    (its '##' pieces and NFD jamo are not the text's bytes) and for added tokens of a byte-level one."""
    style = piece_style(tokenizer)
    if style == "byte_level":
        return piece_bytes(piece)
    return sentencepiece_bytes(piece) if style == "sentencepiece" else None


def readable_bytes(data: bytes) -> str:
    """Whole UTF-8 characters as text; the bytes of an unfinished character as 0xEC 0x95."""
    parts, position = [], 0  # (text, is a lone byte)
    while position < len(data):
        for size in (1, 2, 3, 4):
            try:
                parts.append((data[position:position + size].decode("utf-8"), False))
                position += size
                break
            except UnicodeDecodeError:
                continue
        else:
            parts.append((f"0x{data[position]:02X}", True))
            position += 1
    if all(is_byte for _, is_byte in parts):
        return BYTE_GAP.join(part for part, _ in parts)
    # mixed: runs of lone bytes in brackets, so ' ⟨0xF0 0x9F⟩' cannot be read as text
    text = "".join(f"\0{part}\0" if is_byte else part for part, is_byte in parts)
    return re.sub(r"(?:\0(0x[0-9A-F]{2})\0)+", lambda run: "⟨" + BYTE_GAP.join(re.findall(r"0x[0-9A-F]{2}", run.group())) + "⟩", text)


def byte_labels(text: str, limit: int | None = None) -> list[str]:
    """One label per UTF-8 byte of `text` (the first `limit` bytes): an ASCII byte as itself (space ␣, line break ↵,
    other controls in hex), the first byte of a longer character as the character and its byte ('한 ED'), the bytes
    after it in hex ('95', '9C')."""
    shown = {" ": "␣", "\n": "↵", "\t": "⇥"}
    labels = []
    for character in text:
        encoded = character.encode("utf-8")
        if len(encoded) == 1:
            labels.append(shown.get(character, character if character.isprintable() else f"{encoded[0]:02X}"))
        else:
            first = character if character.isprintable() else "·"
            labels += [f"{first}{BYTE_GAP}{encoded[0]:02X}"] + [f"{b:02X}" for b in encoded[1:]]
    return labels[:limit]


def piece_style(tokenizer) -> str:
    """How the vocabulary writes text, read from the tokenizer's own decoder: "byte_level" (GPT-2, SmolLM2: stand-in
    letters), "sentencepiece" (Gemma, Llama 2: '▁' for a space, '<0xEC>' byte fallback) or "wordpiece" (BERT)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = repr(backend.decoder) if backend is not None else ""
    if "ByteLevel" in decoder:
        return "byte_level"
    return "sentencepiece" if ("ByteFallback" in decoder or "▁" in decoder or "Metaspace" in decoder) else "wordpiece"


def is_byte_level(tokenizer) -> bool:
    return piece_style(tokenizer) == "byte_level"


def token_labels(result) -> list[str]:
    """A capture's tokens as text (`result`: an activations.Capture): a byte piece of an unfinished character shows the character it belongs to."""
    return labels_in_text(result.text, result.tokens, result.offsets.tolist())


def labels_in_text(text: str, tokens: list[str], offsets) -> list[str]:
    """Tokens of a known text as labels: a byte piece shows the character(s) of the text it belongs to."""
    return [text[start:end] if "\ufffd" in token and end > start else token for token, (start, end) in zip(tokens, offsets)]


def token_label(tokenizer, token_id: int) -> str:
    """A token as text; a byte-level piece of an unfinished character (a third of a Hangul syllable, say) as its bytes."""
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    raw = raw_bytes(tokenizer, tokenizer.convert_ids_to_tokens(token_id))
    return readable_bytes(raw) if raw is not None else text


def vocabulary_labels(tokenizer) -> list[str]:
    """Every vocabulary entry as readable text: byte-level and SentencePiece entries as their characters or bytes
    (' 서울', '0xEC'), never 'ìķ' or '▁서울'; special tokens as they are."""
    pieces = [piece or "" for piece in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    if piece_style(tokenizer) == "wordpiece":
        return pieces
    special = set(tokenizer.all_special_tokens) | {str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    return [piece if piece in special else readable_bytes(raw) if (raw := raw_bytes(tokenizer, piece)) is not None
            else piece for piece in pieces]
