"""The app's words: UI texts and per-class disposal guidance, both kept in YAML data files.

Bahasa Indonesia is the default language; every text exists in both languages (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"


@dataclass(frozen=True)
class Guidance:
    """How to dispose of one class, in one language."""

    stream: str  # organik, anorganik, b3, residu or tekstil
    summary: str
    prepare: list[str]
    where: list[str]
    dont: list[str]


@cache
def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files("pilah.resources").joinpath(name).read_text(encoding="utf-8"))


def texts(language: str) -> dict[str, Any]:
    """All UI texts of one language (nested: `errors`, `streams`, `classes`)."""
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    return _load("texts.yaml")[language]


def guidance(label: str, language: str) -> Guidance:
    entry = _load("guidance.yaml")[label]
    words = entry[language]
    return Guidance(entry["stream"], words["summary"], words["prepare"], words["where"], words["dont"])


def guided_classes() -> list[str]:
    return list(_load("guidance.yaml"))


def error_message(code: str | None, language: str) -> str:
    """A friendly message for an `ImageError` reason code; unknown codes get a generic one."""
    errors = texts(language)["errors"]
    return errors.get(code or "other", errors["other"])


def percent(value: float, language: str) -> str:
    """A probability as people read it, one decimal: "99,3 %" in Bahasa Indonesia, "99.3%" in English."""
    text = f"{value * 100:.1f}"
    return f"{text.replace('.', ',')} %" if language == "id" else f"{text}%"


def pair_tip(first: str, second: str, language: str) -> str:
    """What tells two classes apart when the model hesitates between them (a generic tip for other pairs)."""
    tips = texts(language)["pair_tips"]
    return tips.get("|".join(sorted((first, second))), tips["other"])
