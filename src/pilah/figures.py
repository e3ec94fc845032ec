"""Drawing figures to PNG files with matplotlib, without pyplot: no global backend or state, safe in threads and
servers. Shared by the data commands' charts and the evaluation's figures."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
SPLIT_NAMES = {"train": "Train", "val": "Validation", "test": "Test"}
DPI = 120


def figure(rows: int = 1, columns: int = 1, **options):
    """A figure and its axes (`figsize` required)."""
    figure = Figure(figsize=options.pop("figsize"))
    return figure, figure.subplots(rows, columns, **options)


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def bar_labels(ax: Axes, bars, fmt: str) -> None:
    for bar in bars:
        height = bar.get_height()
        ax.annotate(
            format(height, fmt),
            (bar.get_x() + bar.get_width() / 2, height),
            ha="center",
            va="bottom" if height >= 0 else "top",
            fontsize=9,
            xytext=(0, 2 if height >= 0 else -2),
            textcoords="offset points",
        )
