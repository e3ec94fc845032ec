"""How the graded answers behave on a run's validation and test splits: per grade, how many photos, how often the
first class is right, and how often the true class is one of the first two.

    python benchmarks/doubt_grades.py runs/cpu-refit50 [--model src/pilah/resources/models/pilah-xception-int8.onnx]

The grades come from the model card (`uncertain_below` and `grades`, chosen on validation by `pilah evaluate`):
sure, likely ("probably"), two (one of the first two) and none (no promise holds). Validation is where they
were chosen; test says whether they hold on photos that played no part in choosing them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pilah.hardware import describe
from pilah.inference.calibration import GRADES
from pilah.inference.predictor import Predictor
from pilah.runs import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run whose split to use")
    parser.add_argument("--model", type=Path, help="model file (default: the bundled int8 model)")
    parser.add_argument("--data", type=Path, help="data folder, if it moved since training")
    args = parser.parse_args()
    run = Run.open(args.run)
    predictor = Predictor(args.model)
    print(f"machine: {describe()}")
    print(
        f"model {predictor.model_path.name}: sure from {predictor.uncertain_below:.3f}, likely from a lead of "
        f"{predictor.likely_margin:.3f}, one of two from a sum of {predictor.two_from:.3f}\n"
    )
    print("| split | grade | photos | share | first class right | true class in the first two |")
    print("|---|---|---|---|---|---|")
    for split in ("val", "test"):
        rows = run.split_rows(split)
        paths = [args.data / r.path for r in rows] if args.data else run.image_paths(rows)
        results = list(predictor.predict_paths(paths, batch_size=32))
        truth = np.array([r.label for r in rows])
        grades = np.array([p.grade for p in results])
        first = np.array([p.top_k[0][0] for p in results])
        in_two = np.array([r.label in (p.top_k[0][0], p.top_k[1][0]) for r, p in zip(rows, results, strict=True)])
        for grade in GRADES:
            chosen = grades == grade
            count = int(chosen.sum())
            right = f"{np.mean(first[chosen] == truth[chosen]) * 100:.1f} %" if count else "—"
            two = f"{np.mean(in_two[chosen]) * 100:.1f} %" if count else "—"
            print(f"| {split} | {grade} | {count:,} | {count / len(rows) * 100:.1f} % | {right} | {two} |")


if __name__ == "__main__":
    main()
