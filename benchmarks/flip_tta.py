"""Test-time augmentation by horizontal flip, scored on a run's validation split (never the test split).

    python benchmarks/flip_tta.py runs/xception-cpu4 --model models/pilah-xception.keras

Predicts every validation image as it is and mirrored left-right (the seed trains with random flips, so
both are in-distribution) and prints a table: accuracy, loss and calibrated ECE of the plain prediction, of
the mirrored one and of their averaged probabilities, with the throughput each costs. Since all variants
score the same images, the table also gives the paired comparison with the plain prediction: how many images
each makes right that plain gets wrong and the reverse, and the exact McNemar p-value of that split (far more
sensitive than comparing two accuracies as if from independent samples).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import keras
import numpy as np

from pilah.evaluation.metrics import accuracy, cross_entropy, expected_calibration_error, fit_temperature
from pilah.inference.calibration import apply_temperature
from pilah.runs import Run
from pilah.training.fit import batches_for


def predict_plain_and_mirrored(model: keras.Model, run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    batches = batches_for(run, "val")
    plain, mirrored = [], []
    started = time.perf_counter()
    for index in range(len(batches)):
        images, _ = batches[index]
        plain.append(np.asarray(model.predict_on_batch(images), dtype=np.float64))
        mirrored.append(np.asarray(model.predict_on_batch(images[:, :, ::-1, :].copy()), dtype=np.float64))
    seconds = time.perf_counter() - started
    return np.concatenate(plain), np.concatenate(mirrored), batches.labels, seconds


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar test: under "no difference" each discordant image is a fair coin."""
    discordant = gained + lost
    tail = sum(math.comb(discordant, k) for k in range(min(gained, lost) + 1)) / 2**discordant
    return min(1.0, 2 * tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run whose validation split to use")
    parser.add_argument("--model", type=Path, help="model file (default: the run's best.keras)")
    args = parser.parse_args()
    run = Run.open(args.run)
    model = keras.saving.load_model(args.model or run.paths.best_model)
    plain, mirrored, labels, seconds = predict_plain_and_mirrored(model, run)
    single_speed = 2 * len(labels) / seconds  # both passes together took `seconds`
    variants = {
        "plain (baseline)": (plain, single_speed),
        "mirrored": (mirrored, single_speed),
        "mean of plain and mirrored": ((plain + mirrored) / 2, single_speed / 2),
    }
    baseline = accuracy(plain, labels)
    plain_right = plain.argmax(axis=1) == labels
    print(f"validation split of {args.run}: {len(labels)} images\n")
    print(
        "| prediction | val accuracy | vs plain | newly right / newly wrong | McNemar p | val loss "
        "| ECE (15 bins, own temperature) | images/s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (probs, speed) in variants.items():
        right = probs.argmax(axis=1) == labels
        gained, lost = int((right & ~plain_right).sum()), int((plain_right & ~right).sum())
        calibrated = apply_temperature(probs, fit_temperature(probs, labels))
        print(
            f"| {name} | {100 * accuracy(probs, labels):.2f} % | {100 * (accuracy(probs, labels) - baseline):+.2f} pt "
            f"| {gained} / {lost} | {mcnemar_p(gained, lost):.3f} | {cross_entropy(probs, labels):.4f} "
            f"| {100 * expected_calibration_error(calibrated, labels):.2f} % | {speed:.1f} |"
        )


if __name__ == "__main__":
    main()
