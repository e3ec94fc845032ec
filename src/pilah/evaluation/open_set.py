"""Choose the open-set score's bank and threshold (`inference.open_set`), on the training and validation splits.

The bank is a seeded, class-balanced sample of the training photos' features: every class as many photos (or all
it has), so the score does not call a rare class's photos strange for lack of neighbours. The threshold is the
lowest novelty at which the share of validation photos refused is, with `grade_confidence`, at most the aim
(`eval.open_set_false_refusals`, 1 %): the same confidence rule as the grades. A second, lower one marks the photos
less typical than most (`eval.open_set_atypical`, 10 %), whose answers are at most "one of two".
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from pilah.config import EvalConfig
from pilah.evaluation.metrics import accuracy_lower_bound
from pilah.files import write_bytes
from pilah.inference.open_set import CITATION, METHOD, knn_novelty, unit_rows

RUN_BANK = "open_set_bank.npy"  # in a run folder, beside best.keras: `pilah package` copies it beside the model


def choose_bank(features: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Up to `per_class` photos of each class, seeded; unit rows as float16 (what is stored and shipped)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.nonzero(labels == label)[0]
        chosen.append(np.sort(rng.choice(members, min(per_class, len(members)), replace=False)))
    return unit_rows(features[np.concatenate(chosen)]).astype(np.float16)


def refusal_threshold(novelty: np.ndarray, aim: float, confidence: float) -> float:
    """The lowest novelty t such that photos above t are at most `aim` of these, with `confidence` (Wilson's
    bound); the largest novelty when even one refusal is too many for so few photos."""
    ordered = np.sort(novelty)[::-1]  # ordered[r] is the threshold that refuses r photos
    count = len(ordered)
    refused = np.arange(count)
    kept_at_least = accuracy_lower_bound(count - refused, np.full(count, count), confidence)
    allowed = np.nonzero(1 - kept_at_least <= aim + 1e-12)[0]  # 1 - 0.99 is 0.01000...0009 in floating point
    return float(ordered[allowed[-1]]) if len(allowed) else float(ordered[0])


def fit(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    layer: str,
    cfg: EvalConfig,
    seed: int,
) -> tuple[dict[str, Any], np.ndarray]:
    """The card's `open_set` block (without the bank's file name) and the bank."""
    bank = choose_bank(train_features, train_labels, cfg.open_set_bank_per_class, seed)
    novelty = knn_novelty(val_features, bank.astype(np.float32), cfg.open_set_k)
    threshold = refusal_threshold(novelty, cfg.open_set_false_refusals, cfg.grade_confidence)
    typical_up_to = refusal_threshold(novelty, cfg.open_set_atypical, cfg.grade_confidence)
    block = {
        "method": METHOD,
        "reference": CITATION,
        "layer": layer,
        "k": cfg.open_set_k,
        "bank_photos": len(bank),
        "threshold": threshold,
        "false_refusal_aim": cfg.open_set_false_refusals,
        "typical_up_to": typical_up_to,
        "atypical_aim": cfg.open_set_atypical,
        "confidence": cfg.grade_confidence,
        "validation": {
            "photos": len(novelty),
            "refused": float(np.mean(novelty > threshold)),
            "atypical": float(np.mean(novelty > typical_up_to)),
        },
    }
    return block, bank


def save_bank(bank: np.ndarray, path: Path, block: dict[str, Any]) -> dict[str, Any]:
    """Write the bank (beside the model that reads it) and name it, with its checksum, in the block."""
    buffer = io.BytesIO()
    np.save(buffer, bank, allow_pickle=False)
    write_bytes(path, buffer.getvalue())
    return block | {"bank": path.name, "bank_sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}
