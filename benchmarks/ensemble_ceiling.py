"""How far averaging several trained runs lifts validation accuracy: a ceiling for run-to-run variance.

    python benchmarks/ensemble_ceiling.py runs/xception-cpu4 runs/xception-cpu4-seed1 runs/xception-cpu2 ...

Each run's best model scores the validation split from the feature cache of cached (CPU) mode (the clean
view, one pass, no flip), so a model costs seconds. The table gives each model alone, then the mean of the
probabilities of the first k models, with the paired comparison against the first model alone (images
newly right / newly wrong, exact McNemar p). The shipped product stays one model: this only measures how much
of the gap to a target the variance between runs could ever close. The test split is never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np
from flip_tta import mcnemar_p
from recipe_ablation import predict_cached

from pilah.evaluation.metrics import accuracy, cross_entropy
from pilah.modeling.anatomy import split_at_boundary
from pilah.runs import Run
from pilah.training.cached import feature_cache


def validation_probabilities(run: Run, cache_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The run's best model on its cached clean validation view: (probabilities, labels)."""
    if cache_dir:
        run.config.train.cache_dir = cache_dir
    full = keras.saving.load_model(run.paths.best_model)
    _, trainable = split_at_boundary(full, run.config.model.fine_tune_at)
    cache = feature_cache(run, full)
    if not cache.is_complete("val", 0):
        raise SystemExit(f"{run.paths.root}: no cached validation view in {cache.folder} (see --cache-dir)")
    probabilities = predict_cached(trainable, cache.open("val", 0)).astype(np.float64)
    return probabilities, np.array(run.class_indices("val"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders on the same split; the first is the baseline")
    parser.add_argument("--cache-dir", help="where the feature cache is (default: each run's train.cache_dir)")
    args = parser.parse_args()
    runs = [Run.open(folder) for folder in args.runs]
    scored = [(run.paths.root.name, *validation_probabilities(run, args.cache_dir)) for run in runs]
    labels = scored[0][2]
    if any(not np.array_equal(labels, other) for _, _, other in scored):
        raise SystemExit("the runs do not share one validation split")
    baseline_right = scored[0][1].argmax(1) == labels
    rows = [(name, probs) for name, probs, _ in scored]
    for k in range(2, len(scored) + 1):
        rows.append((f"mean of the first {k}", np.mean([probs for _, probs, _ in scored[:k]], axis=0)))
    print(f"validation split: {len(labels):,} images; one image = {100 / len(labels):.3f} pt\n")
    print("| model | val accuracy | val loss | newly right / newly wrong vs first | McNemar p |")
    print("|---|---|---|---|---|")
    for name, probs in rows:
        right = probs.argmax(1) == labels
        gained, lost = int(np.sum(right & ~baseline_right)), int(np.sum(~right & baseline_right))
        print(
            f"| {name} | {100 * accuracy(probs, labels):.2f} % | {cross_entropy(probs, labels):.4f} "
            f"| {gained} / {lost} | {mcnemar_p(gained, lost):.3g} |"
        )


if __name__ == "__main__":
    main()
