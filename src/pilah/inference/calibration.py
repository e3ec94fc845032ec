"""Temperature scaling and the answer grades, shared by evaluation (which chooses them) and inference (which
applies them)."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax(log p / T): the model ends in a softmax, so log p are its logits up to a constant."""
    logits = np.log(np.clip(probs, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


# How sure an answer is, from the model card's thresholds (chosen on validation, `evaluation.metrics`):
# sure (right >= 99 % of the time there), likely (>= 80 %), one of the top two (the true class is one of them
# >= 90 % of the time), or none, for which no promise holds.
GRADES = ("sure", "likely", "two", "none")


def grade_answers(
    first: np.ndarray, second: np.ndarray, sure_from: float, likely_margin: float, two_from: float
) -> np.ndarray:
    """The grade of each answer whose two most likely classes have these (calibrated) probabilities."""
    return np.select(
        [first >= sure_from, first - second >= likely_margin, first + second >= two_from],
        list(GRADES[:3]),
        default=GRADES[3],
    )
