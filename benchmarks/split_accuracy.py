"""One split's accuracy for a run's best model, and how much of it a leaking split owes to memory.

    python benchmarks/split_accuracy.py RUN [--split test] [--model OTHER.keras]

Predicts the split as `pilah evaluate` does (the run's `eval.flip_tta`), without the other splits (a quarter of
the time). Prints accuracy and macro-F1, then accuracy on the images that have an exact or near copy in the
training split (a random split's leak, `pilah data split --strategy random`) against those that have none.
`--model` scores another model on this run's split, e.g. the bundled one on a refit's remaining validation half.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np

from pilah.data.split import leaked_rows
from pilah.evaluation.evaluate import predict_split
from pilah.evaluation.metrics import confusion_matrix, per_class_scores
from pilah.hardware import describe
from pilah.runs import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", type=Path, help="a .keras model to score instead of the run's best")
    args = parser.parse_args()
    run = Run.open(args.run)
    started = time.perf_counter()
    model = keras.saving.load_model(args.model or run.paths.best_model, safe_mode=True)
    probs, labels = predict_split(model, run, args.split)
    seconds = time.perf_counter() - started
    right = probs.argmax(axis=1) == labels
    f1 = per_class_scores(confusion_matrix(labels, probs.argmax(axis=1), len(run.classes)))["f1"]
    rows = run.split_rows(args.split)
    leaked = {(r.source, r.path) for r in leaked_rows(run.manifest, args.split)}
    copied = np.array([(r.source, r.path) in leaked for r in rows])
    print(f"machine: {describe()}")
    scored = args.model or args.run
    print(f"{scored}, {args.run}'s {args.split} split, flip TTA {run.config.eval.flip_tta}, {seconds / 60:.1f} min\n")
    print("| images | count | accuracy |")
    print("|---|---|---|")
    print(f"| all | {len(rows):,} | {right.mean() * 100:.2f} % (macro-F1 {f1.mean():.4f}) |")
    for name, mask in (("with a copy in training", copied), ("without one", ~copied)):
        if mask.any():
            print(f"| {name} | {mask.sum():,} | {right[mask].mean() * 100:.2f} % |")


if __name__ == "__main__":
    main()
