"""Split a scanned data set without leaks, and the manifest that records the split.

Stratified by class, reproducible from the seed; exact and near copies form groups and a group always lands
in one split (the "grouped" strategy). The "random" strategy ignores the groups, as the seed project did.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pilah.config import DataConfig
from pilah.data.scan import ScannedFile, ScanResult
from pilah.errors import DataError
from pilah.files import read_csv, write_csv

SPLITS = ("train", "val", "test")
SPLIT_STRATEGIES = ("grouped", "random")
MANIFEST_COLUMNS = ("path", "class", "split", "sha1", "group")


@dataclass(frozen=True)
class ManifestRow:
    path: str
    label: str
    split: str
    sha1: str
    group: str


def is_exact(group: list[ScannedFile]) -> bool:
    return len({f.sha1 for f in group}) == 1


def split(result: ScanResult, config: DataConfig) -> list[ManifestRow]:
    """Stratified split by class, whole duplicate groups at a time, reproducible from the seed."""
    fractions = np.array([config.train_fraction, config.val_fraction, config.test_fraction])
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    group_ids = result.group_of()
    # "random" deals every image alone, copies or not; the manifest still names each image's duplicate group,
    # so the leak it makes stays visible (`leaked_rows`).
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
    write_csv(Path(path), MANIFEST_COLUMNS, ((r.path, r.label, r.split, r.sha1, r.group) for r in rows))


def read_manifest(path: str | Path) -> list[ManifestRow]:
    header, rows = read_csv(Path(path))
    if tuple(header) != MANIFEST_COLUMNS:
        raise DataError(f"{path}: expected columns {','.join(MANIFEST_COLUMNS)}")
    return [ManifestRow(r["path"], r["class"], r["split"], r["sha1"], r["group"]) for r in rows]


def distribution(rows: list[ManifestRow], classes: list[str]) -> dict[str, dict[str, int]]:
    """Images per class, per split and overall: {class: {"train": n, "val": n, "test": n, "all": n}}."""
    counts = Counter((r.label, r.split) for r in rows)
    table = {c: {s: counts.get((c, s), 0) for s in SPLITS} for c in classes}
    for c in classes:
        table[c]["all"] = sum(table[c][s] for s in SPLITS)
    return table


def write_distribution(table: dict[str, dict[str, int]], path: str | Path) -> None:
    columns = (*SPLITS, "all")
    rows = [(label, *(row[c] for c in columns)) for label, row in table.items()]
    rows.append(("total", *(sum(r[c] for r in table.values()) for c in columns)))
    write_csv(Path(path), ("class", *columns), rows)


def write_rejected(rejected: list[ScannedFile], path: str | Path) -> None:
    write_csv(
        Path(path), ("path", "class", "reason", "message"), ((f.path, f.label, f.error, f.message) for f in rejected)
    )


def write_groups(groups: list[list[ScannedFile]], group_ids: dict[str, str], path: str | Path) -> None:
    rows = [
        (group_ids[f.path], "exact" if is_exact(group) else "near", f.path, f.label, f.sha1)
        for group in sorted(groups, key=lambda g: group_ids[g[0].path])
        for f in sorted(group, key=lambda f: f.path)
    ]
    write_csv(Path(path), ("group", "kind", "path", "class", "sha1"), rows)
