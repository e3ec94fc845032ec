"""Cached (CPU) mode against plain `model.fit` on the same subset, same model, same recipe.

Prints a table: wall clock, best validation accuracy and loss of each mode, and the ratios against
plain fit measured in the same run. "Within noise" means the accuracy difference is inside about two
binomial standard errors of the validation set.

    python benchmarks/train_modes.py --data ../shared/data/garbage12 \
        --weights ../shared/weights/xception_imagenet_notop_fp16.weights.h5 --per-class 40 --epochs 4
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from pilah.config import Config
from pilah.data import scan as scanning
from pilah.data import split as splitting
from pilah.training import strategies
from pilah.training.fit import read_history


def subset_manifest(data_dir: Path, per_class: int, seed: int, path: Path) -> None:
    """`per_class` training images per class and a third as many for validation, from the real split."""
    config = Config().data
    rows = splitting.split(scanning.scan(data_dir, config), config)
    rng = np.random.default_rng(seed)
    chosen = []
    for split, count in (("train", per_class), ("val", max(1, per_class // 3))):
        by_class = defaultdict(list)
        for row in rows:
            if row.split == split:
                by_class[row.label].append(row)
        for label in sorted(by_class):
            picks = rng.choice(len(by_class[label]), size=min(count, len(by_class[label])), replace=False)
            chosen += [by_class[label][i] for i in sorted(picks)]
    test = [r for r in rows if r.split == "test"][:1]  # the run folder expects a test split
    splitting.write_manifest(sorted(chosen + test, key=lambda r: r.path), path)


def run_mode(mode: str, args: argparse.Namespace, manifest: Path, work: Path) -> dict[str, float]:
    config = Config.load(args.config).override(
        [
            f"model.weights={args.weights}",
            f"train.mode={mode}",
            f"train.epochs={args.epochs}",
            f"train.cache_dir={work / 'cache'}",
            "train.early_stopping_patience=100",
        ]
    )
    started = time.perf_counter()
    run = strategies.train(config, args.data, work / mode, manifest)
    seconds = time.perf_counter() - started
    history = read_history(run.paths.history)
    best = max(history, key=lambda row: row["val_accuracy"])
    return {"seconds": seconds, "val_accuracy": best["val_accuracy"], "val_loss": min(r["val_loss"] for r in history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--config", default="configs/cpu.yaml")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        manifest = work / "manifest.csv"
        subset_manifest(args.data, args.per_class, args.seed, manifest)
        val_images = sum(1 for r in splitting.read_manifest(manifest) if r.split == "val")
        results = {mode: run_mode(mode, args, manifest, work) for mode in ("fit", "cached")}
    base = results["fit"]
    noise = math.sqrt(base["val_accuracy"] * (1 - base["val_accuracy"]) / val_images)
    print(f"\n{args.per_class} training images per class, {val_images} validation images, {args.epochs} epochs")
    print(f"{'mode':8} {'wall clock':>11} {'vs fit':>7} {'best val acc':>13} {'diff (pt)':>10} {'best val loss':>14}")
    for mode, r in results.items():
        print(
            f"{mode:8} {r['seconds']:10.0f}s {r['seconds'] / base['seconds']:6.2f}x {r['val_accuracy'] * 100:12.2f}% "
            f"{(r['val_accuracy'] - base['val_accuracy']) * 100:+10.2f} {r['val_loss']:14.4f}"
        )
    print(f"binomial standard error of the validation accuracy: {noise * 100:.2f} pt")


if __name__ == "__main__":
    main()
