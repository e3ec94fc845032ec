"""How unlike the training photos a photo is: the fourth outcome, "not household waste Pilah knows".

A 12-way softmax must name one of its 12 classes for anything, a portrait or a circuit board included. Pilah also
measures how far a photo lies from the photos it learned, in the model's own feature space: the deep k-nearest-
neighbour distance of Sun, Ming, Zhu & Li, "Out-of-distribution detection with deep nearest neighbors" (ICML 2022).
Features of one layer (the card's `open_set.layer`, pooled over the image) are scaled to unit length, and the
novelty of a photo is one minus its cosine similarity to the k-th nearest of a bank of training photos' features.
The bank is a small file beside the model (`<model file>.bank.npy`, float16); `evaluation.open_set` chooses the
layer, the bank and the threshold (on validation only), and every runtime feeds the same layer to the same score.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pilah.errors import ModelNotFoundError, UsageError

METHOD = "knn"
CITATION = "Sun, Ming, Zhu & Li, Out-of-distribution detection with deep nearest neighbors, ICML 2022"
BANK_SUFFIX = ".bank.npy"


def bank_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + BANK_SUFFIX)


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero)."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def knn_novelty(features: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """One minus the cosine similarity of each row of `features` to its k-th nearest row of `bank` (unit rows):
    0 for a photo whose features equal a training photo's, up to 2 for the opposite direction."""
    # einsum's own loop, not BLAS: OpenBLAS's threads spin after a matmul and, on a 2-core machine, took the cores
    # from ONNX Runtime's next run (one photo: 31 ms before the score, 60 ms with a matmul here, 32 ms with this)
    similarity = np.einsum("ij,kj->ik", unit_rows(features), bank)
    kth = np.partition(similarity, similarity.shape[1] - k, axis=1)[:, -k]
    return (1.0 - kth).astype(np.float64)


@dataclass(frozen=True)
class OpenSet:
    """A card's `open_set` block with its bank loaded: `novelty(features)` and the threshold above which a photo is
    unfamiliar."""

    layer: str
    k: int
    threshold: float  # above: unfamiliar
    typical_up_to: float  # above: at most "one of two" (`calibration.grade_answers`)
    bank: np.ndarray  # unit rows, float32

    @classmethod
    def from_card(cls, block: dict[str, Any] | None, model_path: Path) -> OpenSet | None:
        """None for a card without the block (older models: no photo is refused as unfamiliar)."""
        if not block:
            return None
        if block.get("method") != METHOD:
            raise ModelNotFoundError(f"{model_path.name}: unknown open-set method {block.get('method')!r}")
        path = model_path.with_name(block["bank"])
        if not path.is_file():
            raise ModelNotFoundError(f"{model_path.name}: its open-set bank {block['bank']} is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != block["bank_sha256"]:
            raise ModelNotFoundError(f"{model_path.name}: its open-set bank {block['bank']} is not the card's")
        bank = unit_rows(np.load(path, allow_pickle=False))
        return cls(
            layer=block["layer"],
            k=int(block["k"]),
            threshold=float(block["threshold"]),
            typical_up_to=float(block["typical_up_to"]),
            bank=bank,
        )

    def novelty(self, features: np.ndarray) -> np.ndarray:
        if features.shape[1] != self.bank.shape[1]:  # a runtime that puts out another layer's features
            given, banked = features.shape[1], self.bank.shape[1]
            raise UsageError(f"the runtime gives {given} features a photo, the open-set bank has {banked}")
        return knn_novelty(features, self.bank, self.k)


def copy_bank(block: dict[str, Any], model_path: Path, target: Path) -> dict[str, Any]:
    """The bank of `model_path` copied beside `target` (an export, a packaged model), and the block that names it."""
    shutil.copyfile(model_path.with_name(block["bank"]), bank_path(target))
    return block | {"bank": bank_path(target).name}
