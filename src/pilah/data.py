"""Scan a folder-per-class data set, find duplicates, and split it without leaks.

Every file is decoded once. Files that are not decodable images are listed with the reason, never
dropped silently. Exact duplicates (same SHA-1) and near duplicates (64-bit pHash within a Hamming
distance) form groups, and a group always lands in one split.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pilah.config import DataConfig
from pilah.images import ImageError, open_image

KAGGLE_SUBFOLDER = "garbage_classification"  # Kaggle's "Garbage Classification" zip unpacks to this
SPLITS = ("train", "val", "test")
SPLIT_STRATEGIES = ("grouped", "random")
MANIFEST_COLUMNS = ("path", "class", "split", "sha1", "group")
PHASH_SIZE = 8  # 8x8 low-frequency DCT coefficients -> 64 bits
PHASH_SAMPLE = 32  # the image is reduced to 32x32 gray before the DCT (as in the `imagehash` package)
THUMBNAIL_SIZE = 16


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


@dataclass(frozen=True)
class ManifestRow:
    path: str
    label: str
    split: str
    sha1: str
    group: str


class DataError(ValueError):
    """The data folder cannot be used (missing, no class folders, no images)."""


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
    groups = duplicate_groups(images, config.near_duplicate_distance, config.near_duplicate_color_difference)
    return ScanResult(root=root, classes=classes, images=images, rejected=rejected, groups=groups)


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
        return ScannedFile(relative, label, sha1, error=error.reason, message=str(error))
    return ScannedFile(relative, label, sha1, phash=perceptual_hash(image), thumbnail=thumbnail(image))


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n))


_DCT = _dct_matrix(PHASH_SAMPLE)


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash: signs of the 8x8 lowest DCT frequencies of a 32x32 gray copy, against their median."""
    gray = np.asarray(image.convert("L").resize((PHASH_SAMPLE, PHASH_SAMPLE), Image.Resampling.LANCZOS))
    low = (_DCT @ gray.astype(np.float64) @ _DCT.T)[:PHASH_SIZE, :PHASH_SIZE]
    bits = (low > np.median(low)).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def thumbnail(image: Image.Image) -> np.ndarray:
    """A tiny colour copy: pHash sees only gray shapes, so a brown and a green bottle can share it."""
    return np.asarray(image.resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BOX), dtype=np.uint8)


def near_pairs(
    images: list[ScannedFile], max_distance: int, max_color_difference: float, chunk: int = 512
) -> Iterable[tuple[int, int]]:
    """Index pairs i < j that look alike: pHash within `max_distance` bits, then confirmed by the
    colour thumbnails differing by at most `max_color_difference` (mean absolute, 0-255 scale)."""
    hashes = np.array([f.phash for f in images], dtype=np.uint64)
    thumbs = np.stack([f.thumbnail for f in images]).astype(np.int16)
    for start in range(0, len(hashes), chunk):
        distance = np.bitwise_count(hashes[start : start + chunk, None] ^ hashes[None, :])
        rows, cols = np.nonzero(distance <= max_distance)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if i < c and np.abs(thumbs[i] - thumbs[c]).mean() <= max_color_difference:
                yield i, c


def duplicate_groups(
    images: list[ScannedFile], max_distance: int, max_color_difference: float
) -> list[list[ScannedFile]]:
    """Exact copies and near copies, joined transitively (union-find) into groups of 2 or more."""
    parent = list(range(len(images)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    first_with_sha1: dict[str, int] = {}
    for i, f in enumerate(images):
        union(i, first_with_sha1.setdefault(f.sha1, i))
    if max_distance >= 0:
        for i, j in near_pairs(images, max_distance, max_color_difference):
            union(i, j)
    members: dict[int, list[ScannedFile]] = {}
    for i, f in enumerate(images):
        members.setdefault(find(i), []).append(f)
    return [group for group in members.values() if len(group) > 1]


def is_exact(group: list[ScannedFile]) -> bool:
    return len({f.sha1 for f in group}) == 1


def split(result: ScanResult, config: DataConfig) -> list[ManifestRow]:
    """Stratified split by class, whole duplicate groups at a time, reproducible from the seed."""
    fractions = np.array([config.train_fraction, config.val_fraction, config.test_fraction])
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    if config.split_strategy not in SPLIT_STRATEGIES:
        raise DataError(
            f"data.split_strategy must be one of {', '.join(SPLIT_STRATEGIES)}, got {config.split_strategy!r}"
        )
    group_ids = result.group_of()
    # "random" deals every image alone, copies or not; the manifest still names each image's duplicate group,
    # so the leak it makes stays visible (`leaked_groups`).
    unit_of = group_ids if config.split_strategy == "grouped" else {f.path: f.path for f in result.images}
    members: dict[str, list[ScannedFile]] = {}
    for f in sorted(result.images, key=lambda f: f.path):
        members.setdefault(unit_of[f.path], []).append(f)
    by_class: dict[str, list[str]] = {c: [] for c in result.classes}
    for gid in sorted(members):
        labels = Counter(f.label for f in members[gid])
        majority = sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        by_class[majority].append(gid)
    rng = np.random.default_rng(config.seed)
    split_of: dict[str, str] = {}
    overall = np.zeros(len(SPLITS))
    for label in result.classes:
        gids = by_class[label]
        counts = np.zeros(len(SPLITS))
        for index in rng.permutation(len(gids)):
            size = len(members[gids[index]])
            # the split furthest below its share of this class; ties go to the one furthest below
            # its share overall, so small classes do not all round the same way
            in_class = np.round(fractions * (counts.sum() + size) - counts, 9)
            in_all = fractions * (overall.sum() + size) - overall
            chosen = max(range(len(SPLITS)), key=lambda s: (in_class[s], in_all[s]))
            counts[chosen] += size
            overall[chosen] += size
            split_of[gids[index]] = SPLITS[chosen]
    rows = [ManifestRow(f.path, f.label, split_of[unit_of[f.path]], f.sha1, group_ids[f.path]) for f in result.images]
    return sorted(rows, key=lambda r: r.path)


def leaked_rows(rows: list[ManifestRow], split: str = "test") -> list[ManifestRow]:
    """Rows of `split` whose duplicate group also has a member in training: a grouped split has none."""
    in_train = {r.group for r in rows if r.split == "train"}
    return [r for r in rows if r.split == split and r.group in in_train]


def write_manifest(rows: list[ManifestRow], path: str | Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for r in rows:
            writer.writerow((r.path, r.label, r.split, r.sha1, r.group))


def read_manifest(path: str | Path) -> list[ManifestRow]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != MANIFEST_COLUMNS:
            raise DataError(f"{path}: expected columns {','.join(MANIFEST_COLUMNS)}")
        return [ManifestRow(r["path"], r["class"], r["split"], r["sha1"], r["group"]) for r in reader]


def distribution(rows: list[ManifestRow], classes: list[str]) -> dict[str, dict[str, int]]:
    """Images per class, per split and overall: {class: {"train": n, "val": n, "test": n, "all": n}}."""
    counts = Counter((r.label, r.split) for r in rows)
    table = {c: {s: counts.get((c, s), 0) for s in SPLITS} for c in classes}
    for c in classes:
        table[c]["all"] = sum(table[c][s] for s in SPLITS)
    return table


def write_distribution(table: dict[str, dict[str, int]], path: str | Path) -> None:
    columns = (*SPLITS, "all")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("class", *columns))
        for label, row in table.items():
            writer.writerow((label, *(row[c] for c in columns)))
        writer.writerow(("total", *(sum(r[c] for r in table.values()) for c in columns)))


def write_rejected(rejected: list[ScannedFile], path: str | Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "class", "reason", "message"))
        for f in rejected:
            writer.writerow((f.path, f.label, f.error, f.message))


def write_groups(groups: list[list[ScannedFile]], group_ids: dict[str, str], path: str | Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("group", "kind", "path", "class", "sha1"))
        for group in sorted(groups, key=lambda g: group_ids[g[0].path]):
            kind = "exact" if is_exact(group) else "near"
            for f in sorted(group, key=lambda f: f.path):
                writer.writerow((group_ids[f.path], kind, f.path, f.label, f.sha1))
