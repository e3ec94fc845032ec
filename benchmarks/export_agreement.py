"""Exported models against the Keras model on a run's test split: top-1 agreement and accuracy.

    python benchmarks/export_agreement.py runs/xception-cpu2 models/pilah-xception.keras \\
        models/pilah-xception.onnx models/pilah-xception-int8.onnx ...

The first model is the reference; prints a table with each model's test accuracy, its change against the
reference, and the share of test images on which its top-1 class equals the reference's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pilah.predict import Predictor
from pilah.runs import Run


def predict_labels(model: Path, paths: list[Path]) -> tuple[list[str | None], float]:
    predictor = Predictor(model)
    started = time.perf_counter()
    labels = [p.label for p in predictor.predict_paths(paths, batch_size=32)]
    return labels, len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run whose test split to use")
    parser.add_argument("models", nargs="+", type=Path, help="the reference model first, then exports")
    parser.add_argument("--data", type=Path, help="data folder, if it moved since training")
    args = parser.parse_args()
    run = Run.open(args.run)
    root = args.data or run.data_root
    rows = run.split_rows("test")
    paths = [root / r.path for r in rows]
    truth = np.array([r.label for r in rows])
    results = {model: predict_labels(model, paths) for model in args.models}
    reference = np.array(results[args.models[0]][0])
    reference_accuracy = float(np.mean(reference == truth))
    print(f"test split of {args.run}: {len(rows)} images\n")
    print("| model | test accuracy | vs reference | top-1 agreement with reference | images/s (batches of 32) |")
    print("|---|---|---|---|---|")
    for model, (labels, speed) in results.items():
        accuracy = float(np.mean(np.array(labels) == truth))
        agreement = float(np.mean(np.array(labels) == reference))
        print(
            f"| {model.name} | {100 * accuracy:.2f} % | {100 * (accuracy - reference_accuracy):+.2f} pt "
            f"| {100 * agreement:.2f} % | {speed:.1f} |"
        )


if __name__ == "__main__":
    main()
