"""Inference speed and memory on this machine: plain Keras against Predictor with each model format.

Each model runs in its own fresh process, so cold start and resident memory are its own. Prints a
table; the ratios are against the baseline, plain `model.predict` on the `.keras` file, measured in
the same run.

    pilah export --format onnx                                     # -> models/pilah-xception.onnx
    pilah export --format onnx --quantize int8 --calibration DIR   # -> models/pilah-xception-int8.onnx
    python benchmarks/inference.py models/pilah-xception.keras models/pilah-xception.onnx \\
        models/pilah-xception-int8.onnx   # or the shipped one: src/pilah/resources/models/...

Figures: one-image latency (p50 of 30 warm calls, decoding included for Predictor), throughput on
batches of 32, resident memory (RSS) after loading and predicting, and cold start (import, load, the
self-check against the model card's reference answers, and the first prediction). The first line names the
processor's instruction sets: int8 speed depends on them (VNNI or not).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import rss_mb

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "examples").glob("*.jpg"))
LATENCY_CALLS = 30
BATCH = 32
BATCHES = 5


def worker(model: str, baseline: bool, one_pass: bool) -> dict:
    """Runs in a fresh process: everything from the first import counts towards cold start."""
    started = time.perf_counter()
    import numpy as np

    from pilah.images import load_rgb

    photos = [load_rgb(p, 224) for p in PHOTOS]
    batch = np.stack([photos[i % len(photos)] for i in range(BATCH)]).astype(np.float32)
    if baseline:
        import keras

        net = keras.saving.load_model(model)
        net.predict(batch[:1], verbose=0)
        cold = time.perf_counter() - started
        check = 0.0

        def one(i: int) -> None:
            net.predict(batch[i % len(batch)][None], verbose=0)

        def many() -> None:
            net.predict(batch, batch_size=BATCH, verbose=0)

    else:
        from pilah.inference.predictor import Predictor

        predictor = Predictor(model)
        predictor.engine.flip_tta = predictor.engine.flip_tta and not one_pass
        predictor.predict(PHOTOS[0])
        cold = time.perf_counter() - started
        check = predictor.check.seconds

        def one(i: int) -> None:
            predictor.predict(PHOTOS[i % len(PHOTOS)])

        def many() -> None:
            predictor.predict_batch(PHOTOS * (BATCH // len(PHOTOS)) + PHOTOS[: BATCH % len(PHOTOS)])

    for i in range(3):
        one(i)
    latencies = []
    for i in range(LATENCY_CALLS):
        t = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - t)
    many()
    t = time.perf_counter()
    for _ in range(BATCHES):
        many()
    throughput = BATCH * BATCHES / (time.perf_counter() - t)
    p50 = statistics.median(latencies) * 1000
    return {"p50_ms": p50, "images_per_s": throughput, "rss_mb": rss_mb(), "cold_s": cold, "check_s": check}


def measure(model: str, baseline: bool, one_pass: bool = False) -> dict:
    command = [sys.executable, __file__, "--worker", model] + (["--baseline"] if baseline else [])
    command += ["--one-pass"] if one_pass else []
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="the .keras model first (it is also the baseline), then exports")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-pass", action="store_true", help="also measure each export without flip TTA")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.baseline, args.one_pass)))
        return
    from pilah.hardware import describe

    base = measure(args.models[0], baseline=True)
    rows = [("plain Keras `model.predict` (baseline)", base)]
    for model in args.models:
        rows.append((f"Predictor, {Path(model).name}", measure(model, baseline=False)))
        if args.one_pass and not model.endswith(".keras"):
            rows.append((f"Predictor, {Path(model).name}, one pass (no TTA)", measure(model, False, one_pass=True)))
    print(f"machine: {describe()}\n")
    print(
        "| runner | p50 one image (ms) | vs baseline | batch-32 images/s | vs baseline | RSS (MB) | cold start (s) "
        "| of which self-check (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['p50_ms']:.1f} | {base['p50_ms'] / r['p50_ms']:.2f}x faster | {r['images_per_s']:.1f} "
            f"| {r['images_per_s'] / base['images_per_s']:.2f}x | {r['rss_mb']:.0f} | {r['cold_s']:.1f} "
            f"| {r['check_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
