"""A session's prediction history: what the app lists, counts and lets people download."""

from __future__ import annotations

import base64
import io
import secrets
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
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
    return data_url(small)


def data_url(image: Image.Image | np.ndarray) -> str:
    """A PNG data URL: an image the page carries in its own HTML (with alternative text)."""
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, "PNG", optimize=True)
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


HISTORY_PARAM = "h"  # the address's `?h=<token>`: which saved history a browser tab reloads
TOKEN_BYTES = 16
SAVED_BYTES = 64 * 1024 * 1024  # all saved histories together; the least recently used browser's go first
SAVED_ENTRIES = 500  # per browser: the newest


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def is_token(text: str | None) -> bool:
    return bool(text) and len(text) == 2 * TOKEN_BYTES and all(c in "0123456789abcdef" for c in text)


class SavedHistories:
    """The server keeps each browser tab's history under a random token in its address (`?h=...`), so a reload
    (which starts a new Streamlit session) brings the history back. In memory only, bounded in bytes: a restart
    of the app, or 64 MB of other people's histories, forgets it; the CSV download is the lasting copy. The token
    is 128 random bits: an address that is not shared cannot be guessed."""

    def __init__(self, max_bytes: int = SAVED_BYTES, max_entries: int = SAVED_ENTRIES) -> None:
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self.saved: OrderedDict[str, tuple[list[Entry], int]] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()  # Streamlit runs sessions in threads

    def load(self, token: str) -> list[Entry] | None:
        with self.lock:
            if token not in self.saved:
                return None
            self.saved.move_to_end(token)
            return list(self.saved[token][0])

    def save(self, token: str, entries: list[Entry]) -> None:
        kept = list(entries[-self.max_entries :])
        size = sum(len(e.thumbnail) + len(e.source) + len(e.lookalike) + 128 for e in kept)
        with self.lock:
            if token in self.saved:
                self.bytes -= self.saved.pop(token)[1]
            self.saved[token] = (kept, size)
            self.bytes += size
            while self.bytes > self.max_bytes and len(self.saved) > 1:
                self.bytes -= self.saved.popitem(last=False)[1][1]
