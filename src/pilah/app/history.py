"""A session's prediction history: what the app lists, counts and lets people download."""

from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from pilah.files import csv_text
from pilah.inference.calibration import CLASS_GRADES

THUMBNAIL_SIDE = 96


@dataclass(frozen=True)
class Entry:
    time: datetime
    source: str  # what the page called the photo: its file name, or "Camera photo 2"
    label: str  # the most likely class
    confidence: float
    grade: str  # sure, likely, two (one of `label` and `second`), none or unfamiliar (`inference.calibration`)
    second: str  # the runner-up class
    thumbnail: str  # a PNG data URL, small enough to keep many in a session
    id: str = ""  # the result's id on the page (`page.Outcome.id`)
    lookalike: str = ""  # the user's answer to the card's question, "items → stream" ("Used tissue → Residual")

    @property
    def counted(self) -> bool:
        """Whether the statistics count this photo as its class: not when Pilah was unsure or saw no class, nor when
        the user said it is one of the class's look-alikes."""
        return self.grade in CLASS_GRADES and not self.lookalike

    @property
    def class_code(self) -> str:
        """The class for programs: empty when the answer names no class."""
        return self.label if self.grade in (*CLASS_GRADES, "two") and not self.lookalike else ""

    @property
    def time_text(self) -> str:
        return self.time.strftime("%H:%M:%S")


def thumbnail(image: Image.Image) -> str:
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Statistics:
    total: int
    average_confidence: float
    per_class: dict[str, int]  # counted photos only
    unsure: int  # photos not counted as a class


def statistics(entries: list[Entry]) -> Statistics:
    if not entries:
        return Statistics(0, 0.0, {}, 0)
    counts = Counter(e.label for e in entries if e.counted)
    return Statistics(
        total=len(entries),
        average_confidence=sum(e.confidence for e in entries) / len(entries),
        per_class=dict(counts.most_common()),
        unsure=sum(not e.counted for e in entries),
    )


def answer_text(entry: Entry, t: dict) -> str:
    """The answer in the history's words: the class, "probably" the class, one of two, or none."""
    name = t["classes"].get(entry.label, entry.label)
    if entry.lookalike:
        return entry.lookalike
    if entry.grade == "sure":
        return name
    if entry.grade == "likely":
        return t["probably"].format(name=name)
    if entry.grade == "two":
        return t["between"].format(a=name, b=t["classes"].get(entry.second, entry.second))
    return t["unfamiliar_title"] if entry.grade == "unfamiliar" else t["none_title"]


def to_csv(entries: list[Entry], t: dict) -> str:
    """One row per photo, oldest first, in the page's language: time (ISO 8601), file, the answer, how sure, the
    class code (stable English names, for programs) and the confidence (a plain decimal, for spreadsheets)."""
    rows = [
        (
            e.time.isoformat(timespec="seconds"),
            e.source,
            answer_text(e, t),
            t["grade_names"][e.grade],
            e.class_code,
            f"{e.confidence:.4f}",
        )
        for e in entries
    ]
    header = [t["csv"][key] for key in ("time", "file", "answer", "grade", "class_code", "confidence")]
    return csv_text(header, rows)
