"""Split a scanned data set without leaks, and the manifest that records the split.

Stratified by class, reproducible from the seed; exact and near copies form groups and a group always lands
in one split (the "grouped" strategy). The "random" strategy ignores the groups, as the seed project did.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pilah.config import DataConfig
from pilah.data.scan import ScannedFile, ScanResult, is_exact
from pilah.errors import DataError
from pilah.files import read_csv, write_csv

SPLITS = ("train", "val", "test")
SPLIT_STRATEGIES = ("grouped", "random")
MANIFEST_COLUMNS = ("path", "class", "split", "sha1", "group", "source")
OLD_MANIFEST_COLUMNS = MANIFEST_COLUMNS[:-1]  # one data folder: no source column
REFIT_STREAM = 1  # the refit's random stream differs from the split's, which uses the seed alone


@dataclass(frozen=True)
class ManifestRow:
    path: str  # relative to its data folder
    label: str
    split: str
    sha1: str
    group: str
    source: int = 0  # which data folder: 0 is data.root, 1 the first of data.extra_roots, ...


def split(result: ScanResult, config: DataConfig) -> list[ManifestRow]:
    """Stratified split by class, whole duplicate groups at a time, reproducible from the seed.

    With several data folders the first is split as if it were alone, so adding corrections leaves its split (and
    so its test set) unchanged; an image of another folder joins the split of a copy in the first, and the rest of
    the other folders are split among themselves by the same rules."""
    fractions = np.array([config.train_fraction, config.val_fraction, config.test_fraction])
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {fractions.tolist()}")
    group_ids = result.group_of()
    split_of = _deal(_part(result, primary=True), config, fractions)
    for group in result.groups:  # a copy in another folder joins its original's split
        known = [split_of[f.key] for f in group if f.key in split_of]
        if known:
            split_of.update({f.key: known[0] for f in group if f.key not in split_of})
    rest = _part(result, primary=False, exclude=set(split_of))
    if rest.images:
        split_of.update(_deal(rest, config, fractions))
    rows = [ManifestRow(f.path, f.label, split_of[f.key], f.sha1, group_ids[f.key], f.source) for f in result.images]
    rows = refit(rows, config) if config.refit_fraction else rows
    return sorted(rows, key=lambda r: (r.source, r.path))


def refit(rows: list[ManifestRow], config: DataConfig) -> list[ManifestRow]:
    """Move `config.refit_fraction` of each class's validation images into training, a whole unit at a time
    (a duplicate group; an image under the "random" strategy), so that a copy never straddles the two."""
    unit = (lambda r: r.group) if config.split_strategy == "grouped" else (lambda r: f"{r.source}:{r.path}")
    members: dict[str, list[ManifestRow]] = {}
    for r in rows:
        if r.split == "val":
            members.setdefault(unit(r), []).append(r)
    by_class: dict[str, list[str]] = {}
    for uid in sorted(members):
        by_class.setdefault(_majority(r.label for r in members[uid]), []).append(uid)
    rng = np.random.default_rng([config.seed, REFIT_STREAM])
    moved: set[str] = set()
    for label in sorted(by_class):
        uids = by_class[label]
        target = config.refit_fraction * sum(len(members[u]) for u in uids)
        count = 0
        for index in rng.permutation(len(uids)):
            size = len(members[uids[index]])
            if abs(count + size - target) < abs(count - target):  # closer to the share with it than without
                moved.add(uids[index])
                count += size
    return [replace(r, split="train") if r.split == "val" and unit(r) in moved else r for r in rows]


def _part(result: ScanResult, primary: bool, exclude: set | frozenset = frozenset()) -> ScanResult:
    """The images of the first folder (or of the others, less `exclude`), with their duplicate groups cut to them."""
    keep = {f.key for f in result.images if (f.source == 0) == primary and f.key not in exclude}
    groups = [[f for f in g if f.key in keep] for g in result.groups]
    images = [f for f in result.images if f.key in keep]
    return ScanResult(result.roots, result.classes, images, [], [g for g in groups if len(g) > 1])


def _deal(result: ScanResult, config: DataConfig, fractions: np.ndarray) -> dict[tuple[int, str], str]:
    """The split of every image: groups dealt class by class to the split furthest below its share."""
    group_ids = result.group_of()
    # "random" deals every image alone, copies or not; the manifest still names each image's duplicate group,
    # so the leak it makes stays visible (`leaked_rows`).
    alone = {f.key: f"{f.source}:{f.path}" if f.source else f.path for f in result.images}
    unit_of = group_ids if config.split_strategy == "grouped" else alone
    members: dict[str, list[ScannedFile]] = {}
    for f in sorted(result.images, key=lambda f: f.key):
        members.setdefault(unit_of[f.key], []).append(f)
    by_class: dict[str, list[str]] = {c: [] for c in result.classes}
    for gid in sorted(members):
        by_class[_majority(f.label for f in members[gid])].append(gid)
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
    return {f.key: split_of[unit_of[f.key]] for f in result.images}


def _majority(labels: Iterable[str]) -> str:
    """A group's class: its most common label, ties broken by name."""
    return sorted(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def leaked_rows(rows: list[ManifestRow], split: str = "test") -> list[ManifestRow]:
    """Rows of `split` whose duplicate group also has a member in training: a grouped split has none."""
    in_train = {r.group for r in rows if r.split == "train"}
    return [r for r in rows if r.split == split and r.group in in_train]


def write_manifest(rows: list[ManifestRow], path: str | Path) -> None:
    write_csv(Path(path), MANIFEST_COLUMNS, ((r.path, r.label, r.split, r.sha1, r.group, r.source) for r in rows))


def read_manifest(path: str | Path) -> list[ManifestRow]:
    header, rows = read_csv(Path(path))
    if tuple(header) not in (MANIFEST_COLUMNS, OLD_MANIFEST_COLUMNS):
        raise DataError(f"{path}: expected columns {','.join(MANIFEST_COLUMNS)}")
    return [
        ManifestRow(r["path"], r["class"], r["split"], r["sha1"], r["group"], int(r.get("source") or 0)) for r in rows
    ]


def folder_distribution(rows: list[ManifestRow], folders: int) -> list[dict[str, int]]:
    """Images per split and overall, per data folder (in the order the folders were given)."""
    counts = Counter((r.source, r.split) for r in rows)
    table = [{s: counts.get((source, s), 0) for s in SPLITS} for source in range(folders)]
    for row in table:
        row["all"] = sum(row[s] for s in SPLITS)
    return table


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
    rows = ((f.path, f.label, f.error, f.message, f.source) for f in rejected)
    write_csv(Path(path), ("path", "class", "reason", "message", "source"), rows)


def write_groups(groups: list[list[ScannedFile]], group_ids: dict[tuple[int, str], str], path: str | Path) -> None:
    rows = [
        (group_ids[f.key], "exact" if is_exact(group) else "near", f.path, f.label, f.sha1, f.source)
        for group in sorted(groups, key=lambda g: group_ids[g[0].key])
        for f in sorted(group, key=lambda f: f.key)
    ]
    write_csv(Path(path), ("group", "kind", "path", "class", "sha1", "source"), rows)
