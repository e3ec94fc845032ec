"""The numbers of an evaluation: accuracy, loss, per-class scores, calibration, and the uncertainty threshold."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from pilah.config import EvalConfig
from pilah.inference.calibration import EPSILON, apply_temperature


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


def accuracy_lower_bound(right: np.ndarray, count: np.ndarray, confidence: float) -> np.ndarray:
    """Wilson's score bound: the true rate of `right` in `count` cases is at least this, with `confidence`
    (0.5 gives the observed rate itself). A grade chosen where the observed rate just touches its aim misses the
    aim on new photos about half the time; on a few hundred validation answers, by several points."""
    z = NormalDist().inv_cdf(confidence)
    rate = right / count
    centre = rate + z * z / (2 * count)
    spread = z * np.sqrt(rate * (1 - rate) / count + z * z / (4 * count * count))
    return (centre - spread) / (1 + z * z / count)


def selective_threshold(scores: np.ndarray, right: np.ndarray, target: float, confidence: float) -> float:
    """The lowest score t such that the cases scoring >= t are right at least `target` of the time, with
    `confidence` (selective classification with a guarantee, Geifman & El-Yaniv 2017); 1.0 when no such t exists
    (no case is trusted)."""
    order = np.argsort(-scores)
    bound = accuracy_lower_bound(np.cumsum(right[order]), np.arange(1, len(order) + 1), confidence)
    meets = np.nonzero(bound >= target)[0]
    return float(scores[order][meets[-1]]) if len(meets) else 1.0


def uncertainty_threshold(probs: np.ndarray, labels: np.ndarray, target_accuracy: float, confidence: float) -> float:
    """The lowest confidence t such that predictions with confidence >= t are right at least
    `target_accuracy` of the time; below t a result is flagged uncertain (not "sure")."""
    return selective_threshold(probs.max(axis=1), probs.argmax(axis=1) == labels, target_accuracy, confidence)


def doubt_grades(
    probs: np.ndarray,
    labels: np.ndarray,
    sure_from: float,
    likely_accuracy: float,
    pair_coverage: float,
    confidence: float,
) -> dict[str, float]:
    """The grades below "sure", chosen on validation like the sure threshold itself, among the answers below it:
    - `likely_margin`: the lowest lead of the first class over the second such that answers leading by at least
      that much are right at least `likely_accuracy` of the time (shown as "probably" the first class);
    - `two_from`: among the rest, the lowest sum of the first two probabilities such that the true class is one
      of those two at least `pair_coverage` of the time (both shown, with what tells them apart);
    - below that, "none": no promise holds (the probability is spread over many classes, or too few validation
      answers like it back one).
    Each "at least" holds with `confidence` (`accuracy_lower_bound`)."""
    top = np.sort(probs, axis=1)
    first, second = top[:, -1], top[:, -2]
    unsure = first < sure_from
    right = probs.argmax(axis=1) == labels
    lead = first - second
    likely_margin = (
        selective_threshold(lead[unsure], right[unsure], likely_accuracy, confidence) if unsure.any() else 1.0
    )
    rest = unsure & (lead < likely_margin)
    in_pair = (np.argsort(-probs, axis=1)[:, :2] == labels[:, None]).any(axis=1)
    two_from = (
        selective_threshold((first + second)[rest], in_pair[rest], pair_coverage, confidence) if rest.any() else 0.0
    )
    return {"likely_margin": likely_margin, "two_from": two_from}


def choose_grades(probs: np.ndarray, labels: np.ndarray, cfg: EvalConfig) -> tuple[float, dict[str, float]]:
    """The sure threshold and the grades below it, chosen on (calibrated) validation answers."""
    sure_from = uncertainty_threshold(probs, labels, cfg.confident_accuracy, cfg.grade_confidence)
    grades = doubt_grades(probs, labels, sure_from, cfg.likely_accuracy, cfg.pair_coverage, cfg.grade_confidence)
    return sure_from, grades


def split_scores(probs: np.ndarray, labels: np.ndarray, bins: int) -> dict[str, float]:
    return {
        "images": len(labels),
        "accuracy": accuracy(probs, labels),
        "loss": cross_entropy(probs, labels),
        "ece": expected_calibration_error(probs, labels, bins),
    }


def generalization_gaps(splits: dict[str, dict[str, float]]) -> dict[str, float]:
    gaps = {}
    if {"train", "val"} <= splits.keys():
        gaps["train_minus_val_accuracy"] = splits["train"]["accuracy"] - splits["val"]["accuracy"]
        gaps["val_minus_train_loss"] = splits["val"]["loss"] - splits["train"]["loss"]
    if {"val", "test"} <= splits.keys():
        gaps["val_minus_test_accuracy"] = splits["val"]["accuracy"] - splits["test"]["accuracy"]
        gaps["test_minus_val_loss"] = splits["test"]["loss"] - splits["val"]["loss"]
    return gaps
