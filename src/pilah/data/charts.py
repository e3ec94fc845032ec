"""The data set's chart: images per class, overall and per split (needs matplotlib: `pilah[train]`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pilah.figures import SPLIT_COLORS, SPLIT_NAMES, bar_labels, figure, save


def class_distribution(table: dict[str, dict[str, int]], path: Path, title: str) -> Path:
    """Images per class overall, and (after a split) per split."""
    classes = list(table)
    splits = [s for s in SPLIT_NAMES if any(table[c].get(s) for c in classes)]
    rows = 2 if splits else 1
    fig, axes = figure(rows, 1, figsize=(12, 4.5 * rows), squeeze=False)
    x = np.arange(len(classes))
    overall = axes[0][0]
    bars = overall.bar(x, [table[c]["all"] for c in classes], 0.7, color="#7f7f7f")
    bar_labels(overall, bars, ",d")
    overall.set_title(f"{title}: all {sum(table[c]['all'] for c in classes):,} images")
    if splits:
        ax = axes[1][0]
        width = 0.8 / len(splits)
        for i, split in enumerate(splits):
            counts = [table[c][split] for c in classes]
            offset = (i - (len(splits) - 1) / 2) * width
            ax.bar(x + offset, counts, width, label=SPLIT_NAMES[split], color=SPLIT_COLORS[split])
        ax.set_title("per split")
        ax.legend()
    for (ax,) in axes:
        ax.set_xticks(x, classes, rotation=30, ha="right")
        ax.set_ylabel("images")
        ax.grid(axis="y", alpha=0.3)
    return save(fig, path)
