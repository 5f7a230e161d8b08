"""Korean and English strings. Every visible string goes through `t`."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LANGUAGES = {"ko": "한국어", "en": "English"}
DEFAULT_LANGUAGE = "ko"


def _strings_from_assets() -> dict[str, dict[str, str]]:
    """Every string lives as data: assets/strings/<page or concept>.json, each key -> {"ko": …, "en": …}."""
    found: dict[str, dict[str, str]] = {}
    for path in sorted((Path(__file__).resolve().parent.parent / "assets" / "strings").glob("*.json")):
        table = json.loads(path.read_text(encoding="utf-8"))
        repeated = set(table) & set(found)
        if repeated:
            raise ValueError(f"{path.name} repeats keys: {sorted(repeated)}")
        found |= table
    return found


STRINGS: dict[str, dict[str, str]] = _strings_from_assets()


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """The string for `key` in `lang`, with `values` filled in."""
    entry = STRINGS[key]
    text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def missing_translations() -> list[str]:
    return [key for key, entry in STRINGS.items() if set(entry) != set(LANGUAGES) or not all(entry.values())]


@lru_cache(maxsize=1)
def glossary() -> dict:
    """The terms every Korean string follows (ko, en, variants to avoid, a short explanation in each language)."""
    path = Path(__file__).resolve().parent.parent / "assets" / "glossary.json"
    return json.loads(path.read_text(encoding="utf-8"))
