"""What training more of Xception, or at a larger input, costs in cached (CPU) mode: one row per
`model.fine_tune_at` and `data.image_size`.

For each depth it splits the seed's model at that boundary (`pilah.modeling.anatomy.split_at_boundary`), times the
frozen trunk's forward pass (filling the cache) and the trainable part's training step (each epoch),
both on random inputs of the real shapes (the compute does not depend on the values), and projects the
wall clock of `configs/cpu.yaml` (2 views of the 9,115 training images cached, 10 epochs) from those rates.
The projection leaves out image decoding and validation, so the real runs take longer. Ratios are
against the first row (the seed's depth, -20, and size, 224 px), measured in the same run.

    python benchmarks/tail_depth.py [--depths -20,-26,-36,-56,-96] [--sizes 224,255] [--steps 8]
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from pilah.config import Config
from pilah.modeling.anatomy import split_at_boundary
from pilah.modeling.xception import build_model
from pilah.training.fit import compile_model

TRAIN_IMAGES, VAL_IMAGES = 9_115, 3_038  # the 60/20/20 split of garbage12


def images_per_second(step, batch_size: int, steps: int) -> float:
    """Rate of `step()` over `steps` calls, after two calls that build and trace the graph."""
    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - started)


def measure(depth: int, size: int, steps: int) -> dict[str, float]:
    cfg = Config().override([f"model.fine_tune_at={depth}", f"data.image_size={size}", "model.weights=none"])
    full = build_model(cfg.model, 12, cfg.data.image_size)
    trunk, trainable = split_at_boundary(full, depth)
    compile_model(trainable, cfg, TRAIN_IMAGES // cfg.train.batch_size)
    rng = np.random.default_rng(0)
    batch = cfg.train.batch_size
    pixels = rng.uniform(0, 255, (batch, cfg.data.image_size, cfg.data.image_size, 3)).astype("float32")
    cached = [rng.normal(size=(batch, *t.shape[1:])).astype("float32") for t in trainable.inputs]
    labels = np.eye(12, dtype="float32")[rng.integers(0, 12, batch)]
    return {
        "trainable_layers": -depth,
        "size": size,
        "trainable_params": sum(int(np.prod(w.shape)) for w in trainable.trainable_weights),
        "cached_values": sum(int(np.prod(t.shape[1:])) for t in trainable.inputs),
        "trunk_rate": images_per_second(lambda: trunk.predict_on_batch(pixels), batch, steps),
        "train_rate": images_per_second(lambda: trainable.train_on_batch(cached, labels), batch, steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="-20,-26,-36,-56,-96", help="model.fine_tune_at values")
    parser.add_argument("--sizes", default="224", help="data.image_size values (the data set's own: 255)")
    parser.add_argument("--steps", type=int, default=8, help="timed batches per rate")
    parser.add_argument("--views", type=int, default=2, help="cached training views (configs/cpu.yaml: 2)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (configs/cpu.yaml: 10)")
    args = parser.parse_args()
    rows = [
        measure(int(depth), int(size), args.steps) for size in args.sizes.split(",") for depth in args.depths.split(",")
    ]
    base = rows[0]
    print(f"Keras {keras.__version__}, backend {keras.backend.backend()}, batch 32, float32, random inputs")
    print(
        f"projection: {args.views} cached views of {TRAIN_IMAGES:,} images + {VAL_IMAGES:,} validation, "
        f"{args.epochs} epochs of {TRAIN_IMAGES:,}; no decoding, no validation pass\n"
    )
    print(
        "| fine_tune_at | input (px) | trainable params | cached values per image | trunk img/s | train img/s "
        "| train time vs first | cache fill (min) | training (min) | total (min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        fill = (args.views * TRAIN_IMAGES + VAL_IMAGES) / row["trunk_rate"] / 60
        training = args.epochs * TRAIN_IMAGES / row["train_rate"] / 60
        print(
            f"| -{row['trainable_layers']} | {row['size']} | {row['trainable_params']:,} | {row['cached_values']:,} "
            f"| {row['trunk_rate']:.1f} | {row['train_rate']:.1f} | {base['train_rate'] / row['train_rate']:.2f}× "
            f"| {fill:.0f} | {training:.0f} | {fill + training:.0f} |"
        )


if __name__ == "__main__":
    main()
