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
# >= 90 % of the time), none, for which no promise holds, or unfamiliar: the photo is unlike the household waste
# Pilah learned (`inference.open_set`), whatever the probabilities say. Neither of the last two names a class.
GRADES = ("sure", "likely", "two", "none", "unfamiliar")
CLASS_GRADES = GRADES[:2]  # the grades that name one class: only these count as that class in statistics


def grade_answers(
    first: np.ndarray,
    second: np.ndarray,
    sure_from: float,
    likely_margin: float,
    two_from: float,
    novelty: np.ndarray | None = None,
    unfamiliar_above: float = np.inf,
    typical_up_to: float = np.inf,
) -> np.ndarray:
    """The grade of each answer whose two most likely classes have these (calibrated) probabilities, for photos of
    this novelty (NaN or None: not measured). A photo above `unfamiliar_above` is unfamiliar; one above
    `typical_up_to` is less typical than most validation photos, and the softmax's confidence is worth least
    there (a moon named plastic, 97 %): it is at most one of two, never sure or likely."""
    novelty = np.zeros(np.shape(first)) if novelty is None else np.nan_to_num(np.asarray(novelty, dtype=float))
    typical = novelty <= typical_up_to
    sure = first >= sure_from
    likely = ~sure & (first - second >= likely_margin)
    return np.select(
        [novelty > unfamiliar_above, sure & typical, likely & typical, sure | likely | (first + second >= two_from)],
        [GRADES[4], GRADES[0], GRADES[1], GRADES[2]],
        default=GRADES[3],
    )
