"""A session's prediction history: what the app lists, counts and lets people download."""

from __future__ import annotations

import base64
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from pilah.files import csv_text

THUMBNAIL_SIDE = 96


@dataclass(frozen=True)
class Entry:
    time: datetime
    source: str
    label: str
    confidence: float
    uncertain: bool
    thumbnail: str  # a PNG data URL, small enough to keep many in a session

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
    per_class: dict[str, int]


def statistics(entries: list[Entry]) -> Statistics:
    if not entries:
        return Statistics(0, 0.0, {})
    counts = Counter(e.label for e in entries)
    return Statistics(
        total=len(entries),
        average_confidence=sum(e.confidence for e in entries) / len(entries),
        per_class=dict(counts.most_common()),
    )


def to_csv(entries: list[Entry]) -> str:
    """One row per prediction, oldest first: time (ISO 8601), file, class, confidence, uncertain."""
    rows = [
        (e.time.isoformat(timespec="seconds"), e.source, e.label, f"{e.confidence:.4f}", e.uncertain) for e in entries
    ]
    return csv_text(("time", "file", "label", "confidence", "uncertain"), rows)
