"""Feed images from a manifest to Keras in batches, on any backend (a `keras.utils.PyDataset`)."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np

from pilah.images import load_rgb


class ImageBatches(keras.utils.PyDataset):
    """Batches of raw RGB pixels (float32, 0-255) and one-hot labels, decoded in worker threads.

    `drop_last` keeps every batch the same shape (XLA compiles each new shape once); `shuffle`
    reorders per epoch from `seed` and the epoch number, so a resumed run sees the same order.
    """

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
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False)
        self.paths = paths
        self.labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        self.num_classes = num_classes
        self.image_size = image_size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.paths))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.paths))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = self._order()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)

    def __len__(self) -> int:
        count = len(self.paths) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)

    def __getitem__(self, index: int):
        chosen = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        images = np.stack([load_rgb(self.paths[i], self.image_size) for i in chosen]).astype(np.float32)
        if not len(self.labels):
            return (images,)
        return images, np.eye(self.num_classes, dtype=np.float32)[self.labels[chosen]]
