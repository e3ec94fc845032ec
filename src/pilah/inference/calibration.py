"""Temperature scaling, shared by evaluation (which fits it) and inference (which applies it)."""

from __future__ import annotations

import numpy as np

EPSILON = 1e-12


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax(log p / T): the model ends in a softmax, so log p are its logits up to a constant."""
    logits = np.log(np.clip(probs, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)
