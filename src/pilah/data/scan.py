"""Scan folder-per-class data sets: decode every file once, list bad files with the reason, group duplicates.

Accepts `DIR/<class>/*` and Kaggle's `DIR/garbage_classification/<class>/*`, and several folders at once (e.g. the
data set and users' corrections): the first names the classes, the others may hold some of them, and duplicates
are grouped across all, so a corrected copy of a test photo lands in the test split too. Files are recognised as
images by their content, never by their name; a file that is not a usable image is listed, never dropped
silently. Folders whose name starts with "." or "_" are not classes (corrections keep "none of these" in `_none`).
A corrections folder (one with a `corrections.jsonl`) gives only the photos its reviewer accepted, with the
reviewer's class (`data.corrections`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pilah.config import DataConfig
from pilah.data.corrections import LOG_NAME, trainable
from pilah.data.duplicates import duplicate_groups, perceptual_hash, thumbnail
from pilah.errors import DataError, ImageError
from pilah.images import open_image

KAGGLE_SUBFOLDER = "garbage_classification"  # Kaggle's "Garbage Classification" zip unpacks to this


@dataclass(frozen=True)
class ScannedFile:
    path: str  # relative to its data folder, with forward slashes
    label: str
    sha1: str
    phash: int | None = None
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    error: str | None = None  # a reason code when the file is not a usable image
    message: str = ""
    source: int = 0  # which data folder: its position in the scan's `roots`

    @property
    def key(self) -> tuple[int, str]:
        """Unique across folders (two folders may hold the same relative path)."""
        return self.source, self.path


@dataclass(frozen=True)
class DuplicateSummary:
    """What a scan found of copies: distinct files by content, groups of exact and of near copies (with their
    files), and groups whose members carry two class labels."""

    distinct: int
    exact_groups: int
    exact_files: int
    near_groups: int
    near_files: int
    cross_class_groups: int


def is_exact(group: list[ScannedFile]) -> bool:
    return len({f.sha1 for f in group}) == 1


@dataclass
class ScanResult:
    roots: list[Path]
    classes: list[str]
    images: list[ScannedFile]
    rejected: list[ScannedFile]
    groups: list[list[ScannedFile]] = field(default_factory=list)  # duplicate groups, 2+ members

    def class_counts(self) -> dict[str, int]:
        counts = Counter(f.label for f in self.images)
        return {c: counts.get(c, 0) for c in self.classes}

    def group_of(self) -> dict[tuple[int, str], str]:
        """Group id per file key: the smallest SHA-1 in its duplicate group (its own SHA-1 if unique)."""
        ids = {f.key: f.sha1[:16] for f in self.images}
        for group in self.groups:
            gid = min(f.sha1 for f in group)[:16]
            for f in group:
                ids[f.key] = gid
        return ids

    def duplicates(self) -> DuplicateSummary:
        exact = [g for g in self.groups if is_exact(g)]
        near = [g for g in self.groups if not is_exact(g)]
        return DuplicateSummary(
            distinct=len({f.sha1 for f in self.images}),
            exact_groups=len(exact),
            exact_files=sum(map(len, exact)),
            near_groups=len(near),
            near_files=sum(map(len, near)),
            cross_class_groups=sum(len({f.label for f in g}) > 1 for g in self.groups),
        )

    def folder_counts(self) -> list[int]:
        """Usable images per data folder, in the order of `roots`."""
        counts = Counter(f.source for f in self.images)
        return [counts.get(i, 0) for i in range(len(self.roots))]


def image_root(root: Path) -> Path:
    """Accept both `DIR/<class>/*` and Kaggle's `DIR/garbage_classification/<class>/*`."""
    kaggle = root / KAGGLE_SUBFOLDER
    return kaggle if kaggle.is_dir() else root


def class_folders(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    base = image_root(root)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def list_classes(root: Path) -> list[str]:
    classes = class_folders(root)
    if not classes:
        raise DataError(f"{image_root(root)} has no class folders: expected DIR/<class>/<image files>")
    return classes


def scan(
    roots: str | Path | list[str | Path],
    config: DataConfig | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    roots = [Path(r) for r in (roots if isinstance(roots, list) else [roots])]
    config = config or DataConfig()
    classes = list_classes(roots[0])
    jobs = []
    for source, root in enumerate(roots):
        found = class_folders(root)  # a corrections folder may hold only some classes, or none yet
        strangers = sorted(set(found) - set(classes))
        if strangers:
            raise DataError(f"{root} has classes that {roots[0]} has not: {', '.join(strangers)}")
        if (root / LOG_NAME).is_file():  # a corrections folder: what its reviewer accepted, as they labelled it
            chosen = trainable(root, unreviewed=config.corrections == "all")
            jobs += [(root, root / path, label, source) for path, label in sorted(chosen.items())]
            continue
        base = image_root(root)
        jobs += [(root, p, label, source) for label in found for p in sorted((base / label).rglob("*")) if p.is_file()]
    results: list[ScannedFile] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, scanned in enumerate(pool.map(lambda job: inspect_file(*job), jobs), 1):
            results.append(scanned)
            if progress:
                progress(i, len(jobs))
    images = [f for f in results if f.error is None]
    if not images:
        raise DataError(f"no decodable images under {', '.join(map(str, roots))}")
    rejected = [f for f in results if f.error is not None]
    groups = duplicate_groups(
        [f.sha1 for f in images],
        np.array([f.phash for f in images], dtype=np.uint64),
        np.stack([f.thumbnail for f in images]),
        config.near_duplicate_distance,
        config.near_duplicate_color_difference,
    )
    return ScanResult(roots, classes, images, rejected, [[images[i] for i in group] for group in groups])


def inspect_file(root: Path, path: Path, label: str, source: int = 0) -> ScannedFile:
    relative = path.relative_to(root).as_posix()
    try:
        data = path.read_bytes()
    except OSError as error:
        return ScannedFile(relative, label, "", error="unreadable", message=str(error), source=source)
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        image = open_image(data)
    except ImageError as error:
        return ScannedFile(relative, label, sha1, error=error.code, message=str(error), source=source)
    return ScannedFile(relative, label, sha1, perceptual_hash(image), thumbnail(image), source=source)
