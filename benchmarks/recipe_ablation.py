"""Recipe ablation for CPU (cached) mode, measured on the validation split only.

Each variant is `configs/cpu.yaml` plus one or a few `--set` overrides. The script fills one shared
feature cache (clean and augmented training views, clean and mirrored validation views), then trains
every variant in its own process with `pilah.training.strategies.train`, several at a time, and scores each best
checkpoint on the cached validation features: accuracy, accuracy with mirror test-time augmentation
(the mean of the image's and its mirror's probabilities), macro-F1, clean training accuracy and the
train - validation gap. The test split is never read.

    python benchmarks/recipe_ablation.py --data DIR --manifest runs/X/manifest.csv \
        --weights xception.weights.h5 --out ablation [--parallel 13] [--only base,lr3e-4] [--set k=v]

It prints a Markdown table and writes `results.csv` and `histories.csv` into `--out`.
The last column estimates the wall clock of each recipe on the 2-core CPU from the rates of the
shipped run's `train.log` (trunk ~14 images/s while caching, ~250 s per training epoch).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "cpu.yaml"
CPU_TRUNK_IMAGES_PER_SECOND = 14.0  # runs/xception-cpu/train.log: 9,115 images per train view in ~11 min
CPU_SECONDS_PER_EPOCH = 250.0  # same log: epochs 4-10 took 247-256 s

COMBO = ["train.cached_clean_view=true", "train.cached_views=4", "train.learning_rate=3e-4"]
COMBO += ["train.label_smoothing=0.1"]
VARIANTS: dict[str, list[str]] = {
    "base": [],
    "views1": ["train.cached_views=1"],
    "views4": ["train.cached_views=4"],
    "clean+3": ["train.cached_clean_view=true"],
    "lr3e-4": ["train.learning_rate=3e-4"],
    "lr1e-3": ["train.learning_rate=1e-3"],
    "smooth0.1": ["train.label_smoothing=0.1"],
    "l2=1e-3": ["model.l2=1e-3"],
    "l2=0": ["model.l2=0.0"],
    "balanced": ["train.class_weight=balanced"],
    "epochs15": ["train.epochs=15"],
    "combo": COMBO,
    "combo+l2": [
        *COMBO,
        "model.l2=1e-3",
        "train.epochs=15",
    ],
}
FILL = ["train.cached_clean_view=true", "train.cached_views=4"]  # every view any variant reads


def config_for(args: argparse.Namespace, overrides: list[str]):
    from pilah.config import Config

    common = [f"model.weights={args.weights}", f"train.cache_dir={args.out / 'cache'}", *args.set]
    return Config.load(BASE_CONFIG).override([*common, *overrides])


def fill(args: argparse.Namespace) -> None:
    """Fill the shared cache once, plus the mirrored validation view for test-time augmentation."""
    from pilah.modeling.anatomy import split_at_boundary
    from pilah.modeling.xception import build_model
    from pilah.training.cached import feature_cache, prepare, write_view
    from pilah.training.fit import batches_for, prepare_run

    config = config_for(args, FILL)
    run = prepare_run(config, args.data, args.out / "_fill", args.manifest)
    full = build_model(config.model, len(run.classes), config.data.image_size)
    prepare(run, full, epoch=0)
    trunk, _ = split_at_boundary(full, config.model.fine_tune_at)
    cache = feature_cache(run, full)
    if cache.is_complete("val-mirrored", 0):
        return
    mirror = partial(np.flip, axis=2)
    write_view(run, trunk, cache, batches_for(run, "val"), ("val-mirrored", 0), mirror)


def predict_cached(model, parts: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Probabilities of the trainable part; the last batch is padded so XLA compiles one shape."""
    out = []
    for start in range(0, len(parts[0]), batch_size):
        chunk = [p[start : start + batch_size].astype(np.float32) for p in parts]
        count = len(chunk[0])
        chunk = [np.concatenate([c, np.zeros((batch_size - count, *c.shape[1:]), c.dtype)]) for c in chunk]
        out.append(np.asarray(model.predict_on_batch(chunk))[:count])
    return np.concatenate(out)


def worker(args: argparse.Namespace) -> None:
    """Train one variant and score its best checkpoint on the cached clean views."""
    import keras

    from pilah.evaluation import metrics as evallib
    from pilah.modeling.anatomy import split_at_boundary
    from pilah.training.cached import feature_cache
    from pilah.training.fit import read_history
    from pilah.training.strategies import train

    config = config_for(args, VARIANTS[args.name])
    started = time.perf_counter()
    run = train(config, args.data, args.out / args.name, args.manifest)
    seconds = time.perf_counter() - started
    best = keras.saving.load_model(run.paths.best_model)
    _, trainable = split_at_boundary(best, config.model.fine_tune_at)
    cache = feature_cache(run, best)
    val = predict_cached(trainable, cache.open("val", 0))
    mirrored = predict_cached(trainable, cache.open("val-mirrored", 0))
    train_probs = predict_cached(trainable, cache.open("train", 0))
    y_val, y_train = np.array(run.class_indices("val")), np.array(run.class_indices("train"))
    history = read_history(run.paths.history)
    result = {
        "variant": args.name,
        "changes": " ".join(VARIANTS[args.name]) or "configs/cpu.yaml",
        "val_accuracy": float(np.mean(val.argmax(1) == y_val)),
        "val_accuracy_mirror_tta": float(np.mean((val + mirrored).argmax(1) == y_val)),
        "val_macro_f1": macro_f1(evallib, val, y_val),
        "val_ece": evallib.expected_calibration_error(val, y_val),
        "train_accuracy_clean": float(np.mean(train_probs.argmax(1) == y_train)),
        "best_epoch": int(max(history, key=lambda row: row["val_accuracy"])["epoch"]),
        "device_seconds": round(seconds, 1),
        "cpu_minutes_estimate": round(cpu_minutes(config, len(y_train), len(y_val)), 1),
    }
    result["gap_pt"] = 100 * (result["train_accuracy_clean"] - result["val_accuracy"])
    (args.out / args.name / "ablation.json").write_text(json.dumps(result, indent=2))


def macro_f1(evallib, probs: np.ndarray, labels: np.ndarray) -> float:
    matrix = evallib.confusion_matrix(labels, probs.argmax(1), probs.shape[1])
    return float(np.mean(evallib.per_class_scores(matrix)["f1"]))


def cpu_minutes(config, n_train: int, n_val: int) -> float:
    views = config.train.cached_views + int(config.train.cached_clean_view)
    caching = (views * n_train + n_val) / CPU_TRUNK_IMAGES_PER_SECOND
    return (caching + config.train.epochs * CPU_SECONDS_PER_EPOCH * n_train / 9115) / 60


def launch(args: argparse.Namespace, names: list[str]) -> None:
    """Run the workers, `--parallel` at a time; each logs to its own file."""
    pending, running = list(names), []
    base = [sys.executable, __file__, "--data", str(args.data), "--manifest", str(args.manifest)]
    base += ["--weights", str(args.weights), "--out", str(args.out)] + [f"--set={s}" for s in args.set]
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            log = open(args.out / f"{name}.log", "w")  # noqa: SIM115 - closed when the process ends
            running.append((name, subprocess.Popen([*base, "--worker", name], stdout=log, stderr=log, env=env), log))
        time.sleep(2)
        for item in [r for r in running if r[1].poll() is not None]:
            running.remove(item)
            item[2].close()
            print(f"{item[0]}: exit {item[1].returncode}", flush=True)


def report(args: argparse.Namespace, names: list[str]) -> None:
    results = [
        json.loads((args.out / n / "ablation.json").read_text())
        for n in names
        if (args.out / n / "ablation.json").is_file()
    ]
    if not results:
        print("no variant finished")
        return
    with open(args.out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(results[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(results)
    rows = [
        {"variant": r["variant"], **row}
        for r in results
        for row in csv.DictReader((args.out / r["variant"] / "history.csv").open())
    ]
    with open(args.out / "histories.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(dict.fromkeys(k for row in rows for k in row)), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    base = next((r for r in results if r["variant"] == "base"), results[0])
    print(
        "| variant | val acc | Δ vs base | val acc, mirror TTA | val macro-F1 | clean train acc | gap (pt) "
        "| best epoch | est. CPU min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['variant']} | {100 * r['val_accuracy']:.2f} "
            f"| {100 * (r['val_accuracy'] - base['val_accuracy']):+.2f} "
            f"| {100 * r['val_accuracy_mirror_tta']:.2f} | {r['val_macro_f1']:.4f} "
            f"| {100 * r['train_accuracy_clean']:.2f} | {r['gap_pt']:+.2f} | {r['best_epoch']} "
            f"| {r['cpu_minutes_estimate']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True, help="the split to use (e.g. a run's manifest.csv)")
    parser.add_argument("--weights", type=Path, required=True, help="ImageNet Xception .weights.h5")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parallel", type=int, default=1, help="variants trained at once")
    parser.add_argument("--only", help="comma-separated variant names (default: all)")
    parser.add_argument("--set", action="append", default=[], help="override for every variant (e.g. a smoke test)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        args.name = args.worker
        worker(args)
        return
    names = args.only.split(",") if args.only else list(VARIANTS)
    started = time.perf_counter()
    fill(args)
    print(f"cache filled in {time.perf_counter() - started:.0f} s", flush=True)
    launch(args, names)
    print(f"all variants done in {time.perf_counter() - started:.0f} s", flush=True)
    report(args, names)


if __name__ == "__main__":
    main()
