"""Feed images from a manifest to Keras in batches, on any backend (a `keras.utils.PyDataset`)."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from pilah.images import load_rgb


class EpochBatches(keras.utils.PyDataset):
    """Batches over `count` items in an order drawn per epoch from `(seed, epoch)`, so a resumed run sees
    the same order; `drop_last` keeps every batch one shape (XLA compiles each new shape once).
    With `mixup_alpha > 0` each batch is blended with a shuffled copy of itself (see `mixup`)."""

    def __init__(
        self,
        count: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        workers: int,
        epoch: int = 0,
        mixup_alpha: float = 0.0,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        self.count, self.batch_size = count, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.mixup_alpha = mixup_alpha
        self.set_epoch(epoch)

    def reorder(self, rng: np.random.Generator) -> None:
        self.order = rng.permutation(self.count) if self.shuffle else np.arange(self.count)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.reorder(np.random.default_rng([self.seed, epoch]))

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        batches = self.count / self.batch_size
        return math.floor(batches) if self.drop_last else math.ceil(batches)

    def indices(self, index: int) -> np.ndarray:
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]

    def mixed(self, index: int, inputs: tuple[np.ndarray, ...], labels: np.ndarray):
        """The batch as the model gets it: mixed when `mixup_alpha > 0`, from its own (seed, epoch, index)
        stream so that worker threads and resumed runs draw the same blend."""
        if self.mixup_alpha <= 0:
            return inputs, labels
        return mixup(inputs, labels, self.mixup_alpha, np.random.default_rng([self.seed, self.epoch, index]))


def mixup(inputs: tuple[np.ndarray, ...], labels: np.ndarray, alpha: float, rng: np.random.Generator):
    """Mixup (Zhang et al., 2018): blend the batch with a permutation of itself by one lambda ~ Beta(alpha,
    alpha), labels alike. Every input array (e.g. both cached trunk outputs) is blended the same way."""
    weight = np.float32(rng.beta(alpha, alpha))
    partner = rng.permutation(len(labels))
    blended = tuple(weight * x + (1 - weight) * x[partner] for x in inputs)
    return blended, weight * labels + (1 - weight) * labels[partner]


class ImageBatches(EpochBatches):
    """Batches of raw RGB pixels (float32, 0-255) and one-hot labels, decoded in worker threads."""

    def __init__(
        self,
        paths: list[Path],
        labels: list[int] | None,
        num_classes: int,
        image_size: int,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        workers: int = 1,
        mixup_alpha: float = 0.0,
    ) -> None:
        self.paths = paths
        self.labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        self.num_classes = num_classes
        self.image_size = image_size
        super().__init__(len(paths), batch_size, shuffle, drop_last, seed, workers, mixup_alpha=mixup_alpha)

    def __getitem__(self, index: int):
        chosen = self.indices(index)
        images = np.stack([load_rgb(self.paths[i], self.image_size) for i in chosen]).astype(np.float32)
        if not len(self.labels):
            return (images,)
        one_hot = np.eye(self.num_classes, dtype=np.float32)[self.labels[chosen]]
        (images,), labels = self.mixed(index, (images,), one_hot)
        return images, labels
