"""Score a run on train, validation and test: the seed's table plus per-class and calibration figures."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pilah import plots
from pilah.calibration import EPSILON, apply_temperature
from pilah.data import SPLITS
from pilah.predict import flip_averaged
from pilah.runs import Run, read_json, write_json
from pilah.train import batches_for, read_history


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (the data term of the training loss, without L2 penalties)."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], EPSILON, 1.0))))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probs.argmax(axis=1) == labels))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    support = matrix.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def calibration_bins(probs: np.ndarray, labels: np.ndarray, bins: int) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        rows.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": int(inside.sum()),
                "confidence": float(confidence[inside].mean()) if inside.any() else 0.0,
                "accuracy": float(correct[inside].mean()) if inside.any() else 0.0,
            }
        )
    return rows


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: bin-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    rows = calibration_bins(probs, labels, bins)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / len(labels))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature minimising validation NLL (golden-section search on log T; NLL is unimodal)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return cross_entropy(apply_temperature(probs, float(np.exp(log_t))), labels)

    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(60):
        if loss(c) < loss(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    return float(np.exp((a + b) / 2))


def uncertainty_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float) -> float:
    """The lowest confidence t such that predictions with confidence >= t are right at least
    `target_accuracy` of the time (selective classification); below t a result is flagged uncertain."""
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence)
    correct = (probs.argmax(axis=1) == labels)[order]
    running = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    meets = np.nonzero(running >= target_accuracy)[0]
    if not len(meets):
        return 1.0  # never confident enough: flag everything
    return float(confidence[order][meets[-1]])


def predict_split(model: keras.Model, run: Run, split: str) -> tuple[np.ndarray, np.ndarray]:
    batches = batches_for(run, split)
    if not run.config.eval.flip_tta:
        return np.asarray(model.predict(batches, verbose=0), dtype=np.float64), batches.labels
    probs = [flip_averaged(model.predict_on_batch, batches[i][0]) for i in range(len(batches))]
    return np.concatenate(probs), batches.labels


def split_scores(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    return {
        "images": len(labels),
        "accuracy": accuracy(probs, labels),
        "loss": cross_entropy(probs, labels),
        "ece": expected_calibration_error(probs, labels, bins),
    }


def evaluate(run: Run, model_path: Path | None = None) -> dict[str, Any]:
    """Predict every split once, compute the metrics, write `metrics.json`, predictions and figures."""
    cfg, paths = run.config, run.paths
    model_path = model_path or paths.best_model
    model = keras.saving.load_model(model_path)
    bins = cfg.eval.ece_bins
    outputs = {split: predict_split(model, run, split) for split in SPLITS if run.split_rows(split)}
    temperature = fit_temperature(*outputs["val"]) if "val" in outputs else 1.0
    val_probs, val_labels = outputs["val"]
    uncertain_below = uncertainty_threshold(
        apply_temperature(val_probs, temperature), val_labels, cfg.eval.confident_accuracy
    )
    splits = {}
    for split, (probs, labels) in outputs.items():
        scores = split_scores(probs, labels, bins)
        scores["ece_calibrated"] = expected_calibration_error(apply_temperature(probs, temperature), labels, bins)
        splits[split] = scores
    test_probs, test_labels = outputs["test"]
    matrix = confusion_matrix(test_labels, test_probs.argmax(axis=1), len(run.classes))
    scores = per_class_scores(matrix)
    per_class = {
        label: {name: float(values[i]) for name, values in scores.items()} for i, label in enumerate(run.classes)
    }
    metrics: dict[str, Any] = {
        "model": str(model_path),
        "classes": run.classes,
        "splits": splits,
        "temperature": temperature,
        "uncertain_below": uncertain_below,
        "flip_tta": cfg.eval.flip_tta,
        "test": {
            "macro_f1": float(scores["f1"].mean()),
            "per_class": per_class,
            "confusion_matrix": matrix.tolist(),
            "calibration_bins": calibration_bins(apply_temperature(test_probs, temperature), test_labels, bins),
        },
        "gaps": generalization_gaps(splits),
    }
    if paths.state.is_file():
        state = read_json(paths.state)
        metrics["training"] = {"epochs": state["epochs_done"], "seconds": round(state["seconds"], 1)}
    write_json(paths.metrics, metrics)
    write_predictions(run, outputs, temperature, paths.root / "predictions.csv")
    history = read_history(paths.history) if paths.history.is_file() else []
    plots.evaluation_figures(metrics, history, cfg.eval, paths.plots)
    return metrics


def generalization_gaps(splits: dict[str, dict[str, float]]) -> dict[str, float]:
    gaps = {}
    if {"train", "val"} <= splits.keys():
        gaps["train_minus_val_accuracy"] = splits["train"]["accuracy"] - splits["val"]["accuracy"]
        gaps["val_minus_train_loss"] = splits["val"]["loss"] - splits["train"]["loss"]
    if {"val", "test"} <= splits.keys():
        gaps["val_minus_test_accuracy"] = splits["val"]["accuracy"] - splits["test"]["accuracy"]
        gaps["test_minus_val_loss"] = splits["test"]["loss"] - splits["val"]["loss"]
    return gaps


def write_predictions(
    run: Run, outputs: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float, path: Path
) -> None:
    """One row per image: where it was, what it is, what the model said (calibrated confidence)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "split", "class", "predicted", "confidence"))
        for split, (probs, _) in outputs.items():
            calibrated = apply_temperature(probs, temperature)
            for row, p in zip(run.split_rows(split), calibrated, strict=True):
                writer.writerow((row.path, split, row.label, run.classes[int(p.argmax())], f"{p.max():.6f}"))
