"""CPU mode: run the frozen trunk once per image view, cache its outputs, train only what trains.

With the seed's `fine_tune_at = -20`, the first ~90 % of Xception's compute never changes during
training, yet plain `fit` recomputes it for every image in every epoch. Here the frozen trunk runs
once per image and per augmented view; its outputs (two 14x14x728 tensors at 224 px) go to a
float16, disk-backed cache that later runs with the same data, weights and seed reuse. The
trainable tail and the head train on the cache; each checkpoint copies their weights back into
the complete model, which is what gets saved.

What it approximates: a fixed number of augmented views per training image (`train.cached_views`)
instead of a fresh augmentation every epoch, and trunk outputs rounded to float16.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import keras
import numpy as np

from pilah.config import Config
from pilah.data.loader import EpochBatches, ImageBatches
from pilah.images import pad_batch
from pilah.modeling.anatomy import boundary_parts, split_at_boundary
from pilah.modeling.xception import build_augmentation, build_model
from pilah.progress import Progress
from pilah.runs import Run, TrainState, file_logger
from pilah.training.fit import AssembledCheckpoint, batches_for, compile_model, fit


class FeatureCache:
    """Disk-backed float16 arrays of trunk outputs, one file per split, view and boundary tensor."""

    def __init__(self, folder: Path, parts: dict[str, tuple[int, ...]]) -> None:
        self.folder = folder
        self.parts = parts
        folder.mkdir(parents=True, exist_ok=True)

    def _file(self, split: str, view: int, part: str) -> Path:
        return self.folder / f"{split}-view{view}-{part}.npy"

    def _done(self, split: str, view: int, part: str) -> Path:
        return self.folder / f"{split}-view{view}-{part}.done"

    def missing(self, split: str, view: int) -> list[str]:
        return [part for part in self.parts if not self._done(split, view, part).is_file()]

    def is_complete(self, split: str, view: int) -> bool:
        return not self.missing(split, view)

    def create(self, split: str, view: int, count: int) -> dict[str, np.memmap]:
        """New arrays for the parts not yet complete; complete ones (shared with another depth) stay as they are."""
        return {
            part: np.lib.format.open_memmap(
                self._file(split, view, part), mode="w+", dtype=np.float16, shape=(count, *self.parts[part])
            )
            for part in self.missing(split, view)
        }

    def mark_complete(self, split: str, view: int) -> None:
        for part in self.parts:
            self._done(split, view, part).touch()

    def open(self, split: str, view: int) -> list[np.memmap]:
        return [np.load(self._file(split, view, part), mmap_mode="r") for part in self.parts]


def feature_cache(run: Run, full: keras.Model) -> FeatureCache:
    """The run's cache: its folder from `cache_key`, its files from the boundary of `full`."""
    cfg = run.config
    return FeatureCache(Path(cfg.train.cache_dir) / cache_key(run), boundary_parts(full, cfg.model.fine_tune_at))


def cache_key(run: Run) -> str:
    """Same data, split, weights and augmentation -> same key -> the cache is reused (per boundary tensor:
    `boundary_parts` names the files, so the number of trained layers is not part of the key)."""
    cfg = run.config
    weights = cfg.model.weights
    if Path(weights).is_file():
        weights = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    identity = {
        "manifest": [(r.path, r.sha1, r.split) for r in run.manifest],
        "image_size": cfg.data.image_size,
        "seed": cfg.data.seed,
        "backbone": cfg.model.backbone,
        "weights": weights,
        "augment": augment_identity(cfg),
        "format": 2,
    }
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def augment_identity(cfg: Config) -> dict[str, object]:
    """The augmentation settings that shape the cached views. Settings added after the seed's are left out at
    their default (off), so that caches made before they existed keep their key."""
    augment = cfg.model.augment.model_dump()
    return {k: v for k, v in augment.items() if k not in LATER_AUGMENT_SETTINGS or v}


LATER_AUGMENT_SETTINGS = ("brightness", "contrast")


def trunk_outputs(trunk: keras.Model, images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Run the trunk on a batch padded to `batch_size`: one input shape, so XLA compiles it once."""
    padded = pad_batch(images, batch_size)
    outputs = trunk.predict_on_batch(padded)
    if len(trunk.outputs) == 1:  # Keras returns a lone output bare, not in a list (a cut between two blocks)
        outputs = [outputs]
    return [np.asarray(output)[: len(images)] for output in outputs]


def train_views(cfg: Config) -> list[int]:
    """View 0 is the clean image; views 1.. are augmented, each with its own seed."""
    augmented = list(range(1, cfg.train.cached_views + 1))
    return [0, *augmented] if cfg.train.cached_clean_view else augmented


def fill_cache(run: Run, trunk: keras.Model, cache: FeatureCache, logger) -> tuple[int, int]:
    """Run the trunk over every view that the cache lacks: augmented views for train, clean for val. Returns
    how many (split, view) pairs were reused and how many filled."""
    cfg = run.config
    jobs = [("train", v) for v in train_views(cfg)] + [("val", 0)]
    reused = [job for job in jobs if cache.is_complete(*job)]
    for split, view in jobs:
        if (split, view) in reused:
            logger.info(f"cache: {split} view {view} already cached in {cache.folder}")
            continue
        batches = batches_for(run, split)
        keras.utils.set_random_seed(cfg.data.seed * 1000 + view)  # each view reproducible on its own
        augment = partial(build_augmentation(cfg.model.augment), training=True) if view else None
        logger.info(f"cache: running the frozen trunk over {split} view {view} ({len(batches.paths)} images)")
        write_view(run, trunk, cache, batches, (split, view), augment)
    return len(reused), len(jobs) - len(reused)


def write_view(
    run: Run,
    trunk: keras.Model,
    cache: FeatureCache,
    batches: ImageBatches,
    key: tuple[str, int],
    make_view: Callable[[np.ndarray], object] | None,
) -> None:
    """Cache the trunk's outputs for one (split, view) `key`; `make_view` turns a batch of images into that
    view (None: the images as they are). Shared with the ablation benchmark's mirrored view."""
    arrays = cache.create(*key, len(batches.paths))
    progress = Progress(f"cache: {key[0]} view {key[1]}")
    for index in range(len(batches)):
        (images, _) = batches[index]
        images = keras.ops.convert_to_numpy(images if make_view is None else make_view(images))
        outputs = dict(zip(cache.parts, trunk_outputs(trunk, images, batches.batch_size), strict=True))
        start = index * batches.batch_size
        for part, array in arrays.items():
            array[start : start + len(outputs[part])] = np.asarray(outputs[part], dtype=np.float16)
        progress(index + 1, len(batches))
    for array in arrays.values():
        array.flush()
    cache.mark_complete(*key)


class CachedBatches(EpochBatches):
    """Batches of cached trunk outputs; for training, each image draws one of its views per epoch."""

    def __init__(
        self,
        views: list[list[np.memmap]],
        labels: np.ndarray,
        num_classes: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        epoch: int = 0,
        mixup_alpha: float = 0.0,
    ) -> None:
        self.views, self.labels, self.num_classes = views, labels, num_classes
        super().__init__(len(labels), batch_size, shuffle, drop_last, seed, 2, epoch, mixup_alpha)

    def reorder(self, rng: np.random.Generator) -> None:
        super().reorder(rng)
        self.view_of = rng.integers(0, len(self.views), self.count) if self.shuffle else np.zeros(self.count, int)

    def __getitem__(self, index: int):
        chosen = np.sort(self.indices(index))
        parts = []
        for part in range(len(self.views[0])):
            batch = np.empty((len(chosen), *self.views[0][part].shape[1:]), dtype=np.float32)
            for view in np.unique(self.view_of[chosen]):
                rows = self.view_of[chosen] == view
                batch[rows] = self.views[view][part][chosen[rows]]
            parts.append(batch)
        return self.mixed(index, tuple(parts), np.eye(self.num_classes, dtype=np.float32)[self.labels[chosen]])


def prepare(
    run: Run, full: keras.Model, epoch: int
) -> tuple[keras.Model, CachedBatches, CachedBatches, tuple[int, int]]:
    """Fill the cache if needed; return the trainable part, its training and validation batches, and how many
    cached views were reused and filled."""
    cfg = run.config
    trunk, trainable = split_at_boundary(full, cfg.model.fine_tune_at)
    cache = feature_cache(run, full)
    logger = file_logger(run.paths.log)
    cache_use = fill_cache(run, trunk, cache, logger)
    train_labels = np.array(run.class_indices("train"), dtype=np.int64)
    drop_last = cfg.train.drop_last_batch and len(train_labels) >= cfg.train.batch_size
    train_data = CachedBatches(
        [cache.open("train", v) for v in train_views(cfg)],
        train_labels,
        len(run.classes),
        cfg.train.batch_size,
        True,
        drop_last,
        cfg.training_seed,
        epoch,
        cfg.train.mixup_alpha,
    )
    val_data = CachedBatches(
        [cache.open("val", 0)],
        np.array(run.class_indices("val"), dtype=np.int64),
        len(run.classes),
        cfg.eval.batch_size,
        False,
        False,
        cfg.training_seed,
    )
    return trainable, train_data, val_data, cache_use


def train_cached(run: Run) -> Run:
    cfg = run.config
    full = build_model(cfg.model, len(run.classes), cfg.data.image_size)
    trainable, train_data, val_data, (reused, filled) = prepare(run, full, epoch=0)
    compile_model(trainable, cfg, len(train_data))
    checkpoint = AssembledCheckpoint(full, run.paths.best_model, cfg.train.checkpoint_monitor)
    state = TrainState(cache_views_reused=reused, cache_views_filled=filled)
    fit(run, trainable, state, train_data, val_data, checkpoint)
    return run


def resume_cached(run: Run, state: TrainState) -> Run:
    """Rebuild the complete model from its config, then continue the trained part from `last.keras`."""
    cfg = run.config
    full = build_model(cfg.model, len(run.classes), cfg.data.image_size)
    _, train_data, val_data, _ = prepare(run, full, epoch=state.epochs_done)
    trainable = keras.saving.load_model(run.paths.last_model)
    checkpoint = AssembledCheckpoint(full, run.paths.best_model, cfg.train.checkpoint_monitor)
    fit(run, trainable, state, train_data, val_data, checkpoint)
    return run
