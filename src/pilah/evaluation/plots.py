"""The seed's figures (curves, gap analysis, comparison bars) plus confusion, per-class F1 and calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from pilah.config import EvalConfig
from pilah.figures import SPLIT_COLORS, SPLIT_NAMES, bar_labels, figure, save


def training_curves(history: list[dict[str, float]], path: Path) -> Path:
    """Accuracy and loss per epoch, train against validation (the seed's first figure)."""
    epochs = [row["epoch"] for row in history]
    fig, axes = figure(1, 2, figsize=(12, 4.5))
    for ax, metric, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        ax.plot(epochs, [r[metric] for r in history], "o-", label="Train", color=SPLIT_COLORS["train"])
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "o-", label="Validation", color=SPLIT_COLORS["val"])
        ax.set_title(f"Model {title}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return save(fig, path)


def gap_analysis(history: list[dict[str, float]], thresholds: EvalConfig, path: Path) -> Path:
    """Per-epoch train-validation gaps with the over-fitting thresholds (the seed's gap figure)."""
    epochs = [row["epoch"] for row in history]
    accuracy_gap = [r["accuracy"] - r["val_accuracy"] for r in history]
    loss_gap = [r["val_loss"] - r["loss"] for r in history]
    fig, axes = figure(1, 2, figsize=(12, 4.5))
    panels = (
        (axes[0], accuracy_gap, thresholds.accuracy_gap_threshold, "Accuracy gap (train − validation)"),
        (axes[1], loss_gap, thresholds.loss_gap_threshold, "Loss gap (validation − train)"),
    )
    for ax, gap, limit, title in panels:
        ax.plot(epochs, gap, "o-", color="#9467bd", label="gap")
        ax.axhline(limit, color="#d62728", linestyle="--", label=f"over-fitting threshold ({limit:+.2f})")
        ax.axhline(-limit, color="#d62728", linestyle=":", label=f"under-fitting threshold ({-limit:+.2f})")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, path)


def performance_comparison(splits: dict[str, dict[str, float]], path: Path) -> Path:
    """Final accuracy and loss on train, validation and test (the seed's comparison bars)."""
    names = [s for s in SPLIT_NAMES if s in splits]
    colors = [SPLIT_COLORS[s] for s in names]
    labels = [SPLIT_NAMES[s] for s in names]
    fig, axes = figure(1, 2, figsize=(11, 4.5))
    bars = axes[0].bar(labels, [splits[s]["accuracy"] * 100 for s in names], color=colors)
    bar_labels(axes[0], bars, ".2f")
    low = min(splits[s]["accuracy"] * 100 for s in names)
    axes[0].set_ylim(max(0.0, low - 10), 100.5)
    axes[0].set_title("Final accuracy (%)")
    bars = axes[1].bar(labels, [splits[s]["loss"] for s in names], color=colors)
    bar_labels(axes[1], bars, ".4f")
    axes[1].set_title("Final loss (cross-entropy)")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def generalization(gaps: dict[str, float], thresholds: EvalConfig, path: Path) -> Path:
    """Train−validation and validation−test gaps, in accuracy points and in loss."""
    fig, axes = figure(1, 2, figsize=(11, 4.5))
    accuracy = {
        "train − val": gaps.get("train_minus_val_accuracy", 0.0) * 100,
        "val − test": gaps.get("val_minus_test_accuracy", 0.0) * 100,
    }
    loss = {
        "val − train": gaps.get("val_minus_train_loss", 0.0),
        "test − val": gaps.get("test_minus_val_loss", 0.0),
    }
    panels = (
        (axes[0], accuracy, thresholds.accuracy_gap_threshold * 100, "Accuracy gaps (points)", "+.2f"),
        (axes[1], loss, thresholds.loss_gap_threshold, "Loss gaps", "+.4f"),
    )
    for ax, values, limit, title, fmt in panels:
        colors = ["#d62728" if abs(v) > limit else "#2ca02c" for v in values.values()]
        bars = ax.bar(list(values), list(values.values()), color=colors)
        bar_labels(ax, bars, fmt)
        ax.axhline(limit, color="#d62728", linestyle="--", label=f"threshold ±{limit:g}")
        ax.axhline(-limit, color="#d62728", linestyle="--")
        ax.axhline(0, color="black", linewidth=0.8)
        top = max([limit, *map(abs, values.values())]) * 1.4
        ax.set_ylim(-top, top)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


def confusion(matrix: np.ndarray, classes: list[str], path: Path, normalize: bool) -> Path:
    values = matrix.astype(np.float64)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    fig, ax = figure(figsize=(10, 8.5))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = values.max() / 2
    for (i, j), v in np.ndenumerate(values):
        text = f"{v:.2f}" if normalize else f"{int(v)}"
        if normalize and v < 0.005:
            text = ""
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if v > threshold else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix, test split" + (" (row-normalised: recall)" if normalize else " (counts)"))
    return save(fig, path)


def per_class_f1(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    classes = sorted(per_class, key=lambda c: per_class[c]["f1"])
    fig, ax = figure(figsize=(8, 0.45 * len(classes) + 1.5))
    bars = ax.barh(classes, [per_class[c]["f1"] for c in classes], color="#1f77b4")
    for bar, c in zip(bars, classes, strict=True):
        ax.text(
            bar.get_width() + 0.005,
            bar.get_y() + bar.get_height() / 2,
            f"{per_class[c]['f1']:.3f}",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("F1, test split")
    ax.set_title("Per-class F1")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def reliability(bins: list[dict[str, float]], ece: float, path: Path) -> Path:
    """Accuracy against confidence per bin: a calibrated model follows the diagonal."""
    fig, ax = figure(figsize=(5.5, 5))
    used = [b for b in bins if b["count"]]
    centers = [(b["lower"] + b["upper"]) / 2 for b in used]
    width = bins[0]["upper"] - bins[0]["lower"]
    ax.bar(centers, [b["accuracy"] for b in used], width=width * 0.9, color="#1f77b4", label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    ax.set_xlabel("confidence (temperature-scaled)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability, test split (ECE {ece * 100:.2f} %)")
    ax.legend(loc="upper left")
    return save(fig, path)


def evaluation_figures(
    metrics: dict[str, Any], history: list[dict[str, float]], thresholds: EvalConfig, folder: Path
) -> list[Path]:
    classes, test = metrics["classes"], metrics["test"]
    matrix = np.asarray(test["confusion_matrix"])
    made = [
        performance_comparison(metrics["splits"], folder / "performance_comparison.png"),
        generalization(metrics["gaps"], thresholds, folder / "generalization.png"),
        confusion(matrix, classes, folder / "confusion_matrix.png", normalize=False),
        confusion(matrix, classes, folder / "confusion_matrix_normalized.png", normalize=True),
        per_class_f1(test["per_class"], folder / "per_class_f1.png"),
        reliability(test["calibration_bins"], metrics["splits"]["test"]["ece_calibrated"], folder / "reliability.png"),
    ]
    if history:
        made += [
            training_curves(history, folder / "training_curves.png"),
            gap_analysis(history, thresholds, folder / "gap_analysis.png"),
        ]
    return made
