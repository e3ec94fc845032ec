"""Scan a folder-per-class data set: decode every file once, list bad files with the reason, group duplicates.

Accepts `DIR/<class>/*` and Kaggle's `DIR/garbage_classification/<class>/*`. Files are recognised as images by
their content, never by their name; a file that is not a usable image is listed, never dropped silently.
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
from pilah.data.duplicates import duplicate_groups, perceptual_hash, thumbnail
from pilah.errors import DataError, ImageError
from pilah.images import open_image

KAGGLE_SUBFOLDER = "garbage_classification"  # Kaggle's "Garbage Classification" zip unpacks to this


@dataclass(frozen=True)
class ScannedFile:
    path: str  # relative to the data folder, with forward slashes
    label: str
    sha1: str
    phash: int | None = None
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    error: str | None = None  # a reason code when the file is not a usable image
    message: str = ""


@dataclass
class ScanResult:
    root: Path
    classes: list[str]
    images: list[ScannedFile]
    rejected: list[ScannedFile]
    groups: list[list[ScannedFile]] = field(default_factory=list)  # duplicate groups, 2+ members

    def class_counts(self) -> dict[str, int]:
        counts = Counter(f.label for f in self.images)
        return {c: counts.get(c, 0) for c in self.classes}

    def group_of(self) -> dict[str, str]:
        """Group id per path: the smallest SHA-1 in its duplicate group (its own SHA-1 if unique)."""
        ids = {f.path: f.sha1[:16] for f in self.images}
        for group in self.groups:
            gid = min(f.sha1 for f in group)[:16]
            for f in group:
                ids[f.path] = gid
        return ids


def image_root(root: Path) -> Path:
    """Accept both `DIR/<class>/*` and Kaggle's `DIR/garbage_classification/<class>/*`."""
    kaggle = root / KAGGLE_SUBFOLDER
    return kaggle if kaggle.is_dir() else root


def list_classes(root: Path) -> list[str]:
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    base = image_root(root)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class folders: expected DIR/<class>/<image files>")
    return classes


def scan(
    root: str | Path,
    config: DataConfig | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    root = Path(root)
    classes = list_classes(root)
    base = image_root(root)
    jobs = [(path, label) for label in classes for path in sorted((base / label).rglob("*")) if path.is_file()]
    results: list[ScannedFile] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, scanned in enumerate(pool.map(lambda job: inspect_file(root, *job), jobs), 1):
            results.append(scanned)
            if progress:
                progress(i, len(jobs))
    images = [f for f in results if f.error is None]
    if not images:
        raise DataError(f"no decodable images under {base}")
    rejected = [f for f in results if f.error is not None]
    config = config or DataConfig()
    groups = duplicate_groups(
        [f.sha1 for f in images],
        np.array([f.phash for f in images], dtype=np.uint64),
        np.stack([f.thumbnail for f in images]),
        config.near_duplicate_distance,
        config.near_duplicate_color_difference,
    )
    return ScanResult(root, classes, images, rejected, [[images[i] for i in group] for group in groups])


def inspect_file(root: Path, path: Path, label: str) -> ScannedFile:
    relative = path.relative_to(root).as_posix()
    try:
        data = path.read_bytes()
    except OSError as error:
        return ScannedFile(relative, label, "", error="unreadable", message=str(error))
    sha1 = hashlib.sha1(data).hexdigest()
    try:
        image = open_image(data)
    except ImageError as error:
        return ScannedFile(relative, label, sha1, error=error.code, message=str(error))
    return ScannedFile(relative, label, sha1, phash=perceptual_hash(image), thumbnail=thumbnail(image))
