"""The self-check: before a runtime serves anything, it must give the model's own answers on reference photos.

A model card carries the `.keras` model's calibrated probabilities for a few of the bundled example photos.
`Predictor` runs the same photos through each runtime it loads and compares. Fast kernels are chosen per
processor at run time (ONNX Runtime's int8 kernels saturate on x86 without VNNI, for one), so a file that is
right on one machine can be silently wrong on another; this check turns that into a fallback and a warning.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pilah import hardware
from pilah.errors import UsageError
from pilah.images import load_rgb
from pilah.resources import examples_dir


class Checked(Protocol):
    """What the self-check needs of a loaded model (`Predictor` is one): its runtime's name, its input size, and
    its answers (calibrated probabilities and novelty) for a batch; and whether it scores novelty at all."""

    runtime: str
    image_size: int
    open_set: Any

    def answers(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


# A runtime agrees with the reference when every photo keeps its top-1 class and no probability moves by more
# than this. Legitimate int8 quantization moved them by at most 0.106 on the reference photos (README,
# "Correct on every processor"); the saturating kernels moved them by up to 0.97 and changed 10 of 12 classes.
TOLERANCE = 0.25
# Reference photos are the examples on which the reference model is this much surer of its top class than of
# the next, so that no runtime within the tolerance can legitimately swap the two.
MIN_MARGIN = 0.5
# A runtime's novelty (`inference.open_set`) agrees when it is within this of the reference's on every photo.
# Legitimate int8 quantization moved it by at most 0.036 on the reference photos (docs/inference.md), about a
# tenth of the reference photos' own novelty (0.11-0.27) and of the gap to the "typical" threshold (0.34).
NOVELTY_TOLERANCE = 0.075


@dataclass
class CheckResult:
    runtime: str  # what was checked, e.g. "onnxruntime 1.32.0, graph optimisation all"
    passed: bool | None  # None: the model card has no reference answers to check against
    photos: int = 0
    max_difference: float = 0.0  # largest absolute difference of one probability
    tolerance: float = TOLERANCE
    novelty_difference: float | None = None  # largest absolute difference of one photo's novelty (None: not checked)
    changed: list[str] = field(default_factory=list)  # photos whose top-1 class differs from the reference
    seconds: float = 0.0
    note: str = ""

    def summary(self) -> str:
        if self.passed is None:
            return f"not checked ({self.note})"
        verdict = "passed" if self.passed else "FAILED"
        changed = f", {len(self.changed)} named differently" if self.changed else ""
        novelty = (
            ""
            if self.novelty_difference is None
            else f", novelty difference {self.novelty_difference:.3f} (tolerance {NOVELTY_TOLERANCE:g})"
        )
        return (
            f"self-check {verdict} on {self.photos} reference photos (largest probability difference "
            f"{self.max_difference:.3f}, tolerance {self.tolerance:g}{changed}{novelty}; {self.seconds:.2f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference(predictor: Checked, folder: Path | None = None) -> dict[str, Any]:
    """The card's `self_check` block: the predictor's answers on the example photos it is sure of."""
    paths = sorted((folder or examples_dir()).glob("*.jpg"))
    probabilities, novelty = predictor.answers(np.stack([load_rgb(p, predictor.image_size) for p in paths]))
    ordered = np.sort(probabilities, axis=1)
    sure = ordered[:, -1] - ordered[:, -2] >= MIN_MARGIN
    photos = []
    for i, path in enumerate(paths):
        if sure[i]:
            photo = {
                "name": path.name,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "probabilities": [round(float(p), 6) for p in probabilities[i]],
            }
            if novelty is not None:
                photo["novelty"] = round(float(novelty[i]), 6)
            photos.append(photo)
    return {"reference": f"{predictor.runtime}; {hardware.describe()}", "tolerance": TOLERANCE, "photos": photos}


def check(predictor: Checked, block: dict[str, Any] | None, folder: Path | None = None) -> CheckResult:
    """Run the reference photos through the predictor's current runtime and compare with the card."""
    result = CheckResult(runtime=predictor.runtime, passed=None)
    if not block or not block.get("photos"):
        result.note = "the model card holds no reference answers"
        return result
    folder = folder or examples_dir()
    photos = block["photos"]
    for photo in photos:
        path = folder / photo["name"]
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != photo["sha256"]:
            result.note = f"reference photo {photo['name']} is missing or changed in {folder}"
            return result
    started = time.perf_counter()
    batch = np.stack([load_rgb(folder / photo["name"], predictor.image_size) for photo in photos])
    try:
        answers, novelty = predictor.answers(batch)
    except UsageError as error:  # e.g. features the open-set bank cannot score
        result.passed, result.note = False, str(error)
        return result
    expected = np.array([photo["probabilities"] for photo in photos])
    result.seconds = time.perf_counter() - started
    result.photos = len(photos)
    result.tolerance = float(block.get("tolerance", TOLERANCE))
    result.max_difference = float(np.abs(answers - expected).max())
    result.changed = [
        photo["name"] for photo, a, e in zip(photos, answers, expected, strict=True) if a.argmax() != e.argmax()
    ]
    result.passed = result.max_difference <= result.tolerance and not result.changed
    if predictor.open_set is not None:  # a runtime that cannot give the features, or gives others, is not served
        if novelty is None or any("novelty" not in photo for photo in photos):
            result.passed, result.note = False, "no novelty to compare with the card's"
        else:
            result.novelty_difference = float(np.abs(novelty - [photo["novelty"] for photo in photos]).max())
            result.passed = result.passed and result.novelty_difference <= NOVELTY_TOLERANCE
    return result
