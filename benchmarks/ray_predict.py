"""Batch prediction throughput: plain `pilah predict` against Ray Data with 1 and 2 actors, same images, one run.

    python benchmarks/ray_predict.py [--images 2000] [--data ../shared/data/garbage12] [--model MODEL]

Each engine runs as a user runs it, a fresh `pilah predict ... --out FILE.csv` process, timed from start to exit
(so Ray's start-up, the actors' model loading and self-checks are in its time); it also runs on the first 12
images alone, whose time is taken as the engine's fixed cost, so that the steady rate is (images - 12) / (time -
fixed). Prints the machine, then a table with ratios against plain `pilah predict`, measured in the same run, and
where one image's time goes in one process (reading the file, decoding and resizing it, the model), which is
what bounds a cluster's throughput per core.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pilah.hardware import describe
from pilah.images import load_rgb
from pilah.inference.predictor import Predictor, expand_inputs

ROOT = Path(__file__).resolve().parents[1]


SMALL = 12  # images in the run that measures an engine's fixed cost


def pick(data: Path, count: int, folder: Path) -> Path:
    """`count` images spread over the classes, linked into `folder` (the same files for every engine)."""
    folder.mkdir()
    paths = expand_inputs([data])
    step = max(1, len(paths) // count)
    for i, path in enumerate(paths[::step][:count]):
        (folder / f"{i:05d}-{path.name}").symlink_to(path.resolve())
    return folder


def time_per_image(images: Path, model: str | None, count: int = 256) -> dict[str, float]:
    """Milliseconds per image for each stage, one process, the model's batches of 32."""
    predictor = Predictor(model)
    paths = expand_inputs([images])[:count]
    started = time.perf_counter()
    data = [p.read_bytes() for p in paths]
    read = time.perf_counter() - started
    started = time.perf_counter()
    arrays = [load_rgb(d, predictor.image_size) for d in data]
    decode = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, len(arrays), 32):
        predictor.probabilities(np.stack(arrays[i : i + 32]))
    infer = time.perf_counter() - started
    return {name: 1000 * t / len(paths) for name, t in (("read", read), ("decode", decode), ("model", infer))}


def run(images: Path, out: Path, *engine: str) -> tuple[float, int]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "pilah.cli", "predict", str(images), "--out", str(out), *engine]
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    with open(out, newline="") as handle:
        rows = sum(1 for _ in csv.reader(handle)) - 1
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "garbage12")
    parser.add_argument("--model", help="default: the bundled int8 model")
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"{args.data} is missing: pass --data DIR (any folder of photos)")
    model = ["--model", args.model] if args.model else []
    engines = [
        ("pilah predict (plain, baseline)", []),
        ("Ray Data, 1 actor", ["--engine", "ray", "--workers", "1"]),
        ("Ray Data, 2 actors", ["--engine", "ray", "--workers", "2"]),
    ]
    measured = []
    with tempfile.TemporaryDirectory() as work:
        images = pick(args.data, args.images, Path(work) / "images")
        small = pick(images, SMALL, Path(work) / "small")
        for i, (name, flags) in enumerate(engines):
            fixed, _ = run(small, Path(work) / f"small-{i}.csv", *flags, *model)
            seconds, rows = run(images, Path(work) / f"{i}.csv", *flags, *model)
            measured.append((name, rows, seconds, fixed))
        stages = time_per_image(images, args.model)
    base = measured[0][1] / measured[0][2]
    base_steady = (measured[0][1] - SMALL) / (measured[0][2] - measured[0][3])
    print(f"\nmachine: {describe()}")
    print(f"{args.images} images from {args.data}; each engine a fresh process, start to exit\n")
    print("| engine | rows | seconds | images/s | vs plain | fixed cost (s) | steady images/s | vs plain |")
    print("|---|---|---|---|---|---|---|---|")
    for name, rows, seconds, fixed in measured:
        rate, steady = rows / seconds, (rows - SMALL) / (seconds - fixed)
        print(
            f"| {name} | {rows:,} | {seconds:.1f} | {rate:.1f} | {rate / base:.2f}× | {fixed:.1f} | {steady:.1f} "
            f"| {steady / base_steady:.2f}× |"
        )
    total = sum(stages.values())
    print("\nwhere one image's time goes (one process, 256 images, batches of 32; model with the card's flip TTA):\n")
    print("| stage | ms per image | share |")
    print("|---|---|---|")
    for stage, ms in stages.items():
        print(f"| {stage} | {ms:.1f} | {ms / total:.0%} |")


if __name__ == "__main__":
    main()
