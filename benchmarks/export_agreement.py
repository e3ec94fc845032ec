"""Exported models against the Keras model on a run's test split: top-1 agreement and accuracy.

    python benchmarks/export_agreement.py runs/xception-cpu4 models/pilah-xception.keras \\
        models/pilah-xception.onnx src/pilah/resources/models/pilah-xception-int8.onnx ...

The first model is the reference; prints a table with each model's test accuracy, its change against the
reference, the share of test images on which its top-1 class equals the reference's, its expected
calibration error (with the temperature of its model card) and the share of images it flags uncertain.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pilah.evaluation.metrics import expected_calibration_error
from pilah.hardware import describe
from pilah.inference.predictor import Prediction, Predictor
from pilah.runs import Run


def predict_all(model: Path, paths: list[Path]) -> tuple[list[Prediction], list[str], float]:
    predictor = Predictor(model)
    started = time.perf_counter()
    results = list(predictor.predict_paths(paths, batch_size=32))
    return results, predictor.classes, len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run whose test split to use")
    parser.add_argument("models", nargs="+", type=Path, help="the reference model first, then exports")
    parser.add_argument("--data", type=Path, help="data folder, if it moved since training")
    args = parser.parse_args()
    run = Run.open(args.run)
    rows = run.split_rows("test")
    paths = [args.data / r.path for r in rows] if args.data else run.image_paths(rows)
    truth = np.array([r.label for r in rows])
    results = {model: predict_all(model, paths) for model in args.models}
    reference = np.array([p.label for p in results[args.models[0]][0]])
    reference_accuracy = float(np.mean(reference == truth))
    print(f"machine: {describe()}")
    print(f"test split of {args.run}: {len(rows)} images\n")
    print(
        "| model | test accuracy | vs reference | top-1 agreement with reference | ECE (15 bins, calibrated) "
        "| flagged uncertain | images/s (batches of 32) |"
    )
    print("|---|---|---|---|---|---|---|")
    for model, (predictions, classes, speed) in results.items():
        labels = np.array([p.label for p in predictions])
        accuracy = float(np.mean(labels == truth))
        agreement = float(np.mean(labels == reference))
        probs = np.array([[p.probabilities[c] for c in classes] for p in predictions])
        ece = expected_calibration_error(probs, np.array([classes.index(t) for t in truth]))
        uncertain = float(np.mean([p.uncertain for p in predictions]))
        print(
            f"| {model.name} | {100 * accuracy:.2f} % | {100 * (accuracy - reference_accuracy):+.2f} pt "
            f"| {100 * agreement:.2f} % | {100 * ece:.2f} % | {100 * uncertain:.1f} % | {speed:.1f} |"
        )


if __name__ == "__main__":
    main()
