"""The app's words, kept in a YAML data file (`pilah/resources/texts.yaml`), and how numbers are written.

Bahasa Indonesia is the default language; every text exists in both languages (tests check it). The disposal
advice itself comes from the regional guidance packs (`pilah.guidance`).
"""

from __future__ import annotations

from typing import Any

from pilah.guidance import LANGUAGES
from pilah.resources import read_yaml

DEFAULT_LANGUAGE = "id"


def texts(language: str) -> dict[str, Any]:
    """All UI texts of one language (nested: `errors`, `classes`, `pair_tips`, `csv`)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return read_yaml("texts.yaml")[language]


def error_message(code: str | None, language: str) -> str:
    """A friendly message for an `ImageError` reason code; unknown codes get a generic one."""
    errors = texts(language)["errors"]
    return errors.get(code or "other", errors["other"])


def decimal(value: float, language: str, digits: int = 3) -> str:
    """A number with the language's decimal mark: "0,106" in Bahasa Indonesia, "0.106" in English."""
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if language == "id" else text


def percent(value: float, language: str) -> str:
    """A probability as people read it, one decimal: "99,3 %" in Bahasa Indonesia, "99.3%" in English."""
    text = decimal(value * 100, language, 1)
    return f"{text} %" if language == "id" else f"{text}%"


def pair_tip(first: str, second: str, language: str) -> str:
    """What tells two classes apart when the model hesitates between them (a generic tip for other pairs)."""
    tips = texts(language)["pair_tips"]
    return tips.get("|".join(sorted((first, second))), tips["other"])
