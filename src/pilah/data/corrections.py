"""Corrections from users, kept as training data: `DIR/<class>/<sha1>.jpg` plus an append-only `corrections.jsonl`.

The folder is a folder-per-class data set that `pilah data split` and `pilah train --data DIR` read through its log:
a person reviews each correction first (`pilah data corrections review DIR`: accept, reject or relabel, each
decision appended to the log, nothing deleted), and training takes only accepted ones unless told otherwise
(photos a user said fit no class go to `_none/`, which a scan skips). Safe by construction: file names come from
the photo's SHA-1, never from a request; the photo is decoded and re-encoded as JPEG (which also drops its
metadata, e.g. a phone's GPS position); one lock file serialises writers across threads and processes, so
parallel writers lose nothing; a size cap per photo and a count cap per folder bound the disk it can take.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pilah.errors import CorrectionError
from pilah.files import write_bytes
from pilah.guidance import LANGUAGES, REGION_PATTERN
from pilah.images import DEFAULT_MAX_UPLOAD_MB, MEGABYTE, check_upload_size, open_image

LOG_NAME = "corrections.jsonl"
NONE_CLASS = "none"  # "none of these classes": kept apart, in NONE_FOLDER, never trained on as a class
NONE_FOLDER = "_none"
LOCK_NAME = ".lock"
DEFAULT_MAX_PHOTOS = 10_000
JPEG_QUALITY = 95
LOG_BYTES_PER_PHOTO = 2048  # the log's cap: answers about photos already kept append records without a new photo
REVIEW = "review"  # the `kind` of a reviewer's record; a user's correction has none (older logs) or "correction"
DECISIONS = ("accepted", "rejected")
PENDING = "pending"


@dataclass(frozen=True)
class Correction:
    """One answer from a user about one prediction: what the model said and what the user says it is."""

    predicted: str
    confidence: float
    chosen: str  # a class, or NONE_CLASS
    model_name: str
    model_version: str
    language: str | None = None  # the app's language when it was given
    region: str | None = None
    channel: str = "app"  # "app" or "api"
    time: str = field(default_factory=lambda: _now())

    @property
    def correct(self) -> bool:
        return self.predicted == self.chosen


class CorrectionStore:
    """A corrections folder, created on first use."""

    def __init__(
        self,
        folder: str | Path,
        classes: list[str],
        max_photos: int = DEFAULT_MAX_PHOTOS,
        max_bytes: int = DEFAULT_MAX_UPLOAD_MB * MEGABYTE,
    ) -> None:
        self.folder = Path(folder)
        self.classes = list(classes)
        self.max_photos, self.max_bytes = max_photos, max_bytes

    def add(self, photo: bytes, correction: Correction) -> dict:
        """Keep the photo under its chosen class and append the record; returns the record as written."""
        if correction.chosen not in (*self.classes, NONE_CLASS):
            raise CorrectionError(f"unknown class {correction.chosen!r}; one of {self.classes} or {NONE_CLASS!r}")
        if correction.language is not None and correction.language not in LANGUAGES:
            raise CorrectionError(f"language must be one of {list(LANGUAGES)}", code="unknown_language")
        if correction.region is not None and not re.fullmatch(REGION_PATTERN, correction.region):
            raise CorrectionError("region must be a region code such as id, de or us-sf", code="unknown_region")
        check_upload_size(len(photo), self.max_bytes)  # an ImageError `too_large_upload`
        jpeg = _as_jpeg(photo)  # an ImageError for anything that is not a usable image
        sha1 = hashlib.sha1(photo).hexdigest()
        relative = f"{folder_of(correction.chosen)}/{sha1}.jpg"
        with self._locked():
            log = self.folder / LOG_NAME
            if log.is_file() and log.stat().st_size >= self.max_photos * LOG_BYTES_PER_PHOTO:
                raise CorrectionError("the corrections log is at its size limit", code="corrections_full")
            existing = self._copies(sha1)
            if not existing and self.count() >= self.max_photos:
                raise CorrectionError(  # no path: this message reaches API clients
                    f"the corrections folder holds {self.max_photos:,} photos, its limit", code="corrections_full"
                )
            for old in existing:  # the latest answer decides the photo's class: one copy only
                if old.relative_to(self.folder).as_posix() != relative:
                    old.unlink()
                    if not any(old.parent.iterdir()):  # no empty class folder left behind for a scan
                        old.parent.rmdir()
            write_bytes(self.folder / relative, jpeg)
            record = {"path": relative, "sha1": sha1, **asdict(correction), "correct": correction.correct}
            self._append(record)
        return record

    def review(self, sha1: str, decision: str, label: str | None = None) -> dict:
        """Record a reviewer's decision on a kept photo: accepted (as `label`, when given: a relabel) or rejected.
        The photo and every earlier record stay; the latest decision counts, until a user corrects it again."""
        return self.review_many([(sha1, decision, label)])[0]

    def review_many(self, decisions: list[tuple[str, str, str | None]]) -> list[dict]:
        """Several decisions `(sha1, decision, label)`, checked all before any is written, from one reading of the
        log (a review session of hundreds of photos reads it once, not once a photo)."""
        for _, decision, label in decisions:
            if decision not in DECISIONS:
                raise CorrectionError(f"decision must be one of {list(DECISIONS)}", code="usage")
            if label is not None and label not in (*self.classes, NONE_CLASS):
                raise CorrectionError(f"unknown class {label!r}; one of {self.classes} or {NONE_CLASS!r}")
        with self._locked():
            states = review_states(self.folder)
            unknown = [sha1 for sha1, _, _ in decisions if sha1 not in states]
            if unknown:
                raise CorrectionError(
                    f"no correction with sha1 {unknown[0]!r} in this folder", code="unknown_correction"
                )
            records = []
            for sha1, decision, label in decisions:
                chosen = label or states[sha1].label
                states[sha1] = ReviewState(states[sha1].path, chosen, decision)
                records.append({"kind": REVIEW, "sha1": sha1, "decision": decision, "label": chosen, "time": _now()})
            self._append(*records)
        return records

    def _append(self, *records: dict) -> None:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        with open(self.folder / LOG_NAME, "a", encoding="utf-8") as log:
            torn = log.tell() > 0 and not _ends_with_newline(self.folder / LOG_NAME)
            log.write(("\n" if torn else "") + lines)
            log.flush()
            os.fsync(log.fileno())

    def count(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.jpg"))

    def _copies(self, sha1: str) -> list[Path]:
        return list(self.folder.glob(f"*/{sha1}.jpg"))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOCK_NAME, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # each call opens its own: threads exclude each other too
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _ends_with_newline(path: Path) -> bool:
    """Whether the log's last write finished: after a crash mid-line, the next record starts on a line of its own
    (the torn line is skipped when read), instead of being glued to it and lost with it."""
    with open(path, "rb") as log:
        log.seek(-1, os.SEEK_END)
        return log.read(1) == b"\n"


def folder_of(chosen: str) -> str:
    return NONE_FOLDER if chosen == NONE_CLASS else chosen


def _as_jpeg(photo: bytes) -> bytes:
    image = open_image(photo)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def read_log(folder: str | Path) -> list[dict]:
    """Every record, oldest first; a torn last line (a crash mid-write) is skipped, never fatal."""
    path = Path(folder) / LOG_NAME
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def is_correction(record: dict) -> bool:
    return record.get("kind", "correction") != REVIEW


@dataclass(frozen=True)
class ReviewState:
    """Where a kept photo stands: its file, the class it would be trained as, and the reviewer's decision."""

    path: str  # relative to the folder
    label: str  # the user's answer, or the reviewer's relabel
    state: str  # PENDING or one of DECISIONS


def review_states(folder: str | Path) -> dict[str, ReviewState]:
    """Each photo's state, replayed from the log: a user's correction makes it pending again (the photo moved to
    the new answer's folder), a review decides it."""
    states: dict[str, ReviewState] = {}
    for record in read_log(folder):
        sha1 = record.get("sha1")
        if is_correction(record):
            states[sha1] = ReviewState(record["path"], record["chosen"], PENDING)
        elif sha1 in states and record.get("decision") in DECISIONS:
            states[sha1] = ReviewState(states[sha1].path, record["label"], record["decision"])
    return states


def trainable(folder: str | Path, unreviewed: bool = False) -> dict[str, str]:
    """The photos to train on, path -> class: the accepted ones (and, with `unreviewed`, the pending ones too);
    never a rejected one, nor one whose class is "none"."""
    wanted = {"accepted", PENDING} if unreviewed else {"accepted"}
    return {
        s.path: s.label
        for s in review_states(folder).values()
        if s.state in wanted and s.label != NONE_CLASS and (Path(folder) / s.path).is_file()
    }


@dataclass
class Summary:
    records: int
    photos: dict[str, int]  # photos on disk per folder (class, or NONE_FOLDER)
    per_class: dict[str, dict[str, int]]  # per chosen class: answers, of which the model had right and wrong
    confusions: list[tuple[str, str, int]]  # (predicted, chosen, count), most frequent first, wrong answers only
    reviews: dict[str, int]  # photos per review state: pending, accepted, rejected


def summarise(folder: str | Path) -> Summary:
    """What users said: per class how often the model was right or wrong, and the pairs it confused."""
    folder = Path(folder)
    records = [r for r in read_log(folder) if is_correction(r)]
    per_class: dict[str, dict[str, int]] = {}
    for r in records:
        row = per_class.setdefault(r["chosen"], {"answers": 0, "right": 0, "wrong": 0})
        row["answers"] += 1
        row["right" if r["correct"] else "wrong"] += 1
    pairs = Counter((r["predicted"], r["chosen"]) for r in records if not r["correct"])
    photos = Counter(p.parent.name for p in folder.glob("*/*.jpg")) if folder.is_dir() else Counter()
    return Summary(
        len(records),
        dict(sorted(photos.items())),
        dict(sorted(per_class.items())),
        [(a, b, n) for (a, b), n in pairs.most_common()],
        {state: Counter(s.state for s in review_states(folder).values())[state] for state in (PENDING, *DECISIONS)},
    )
