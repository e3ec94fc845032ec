"""Data-parallel training over all local devices (`train.distribute: data_parallel`), with Keras's own
`keras.distribution.DataParallel` on the JAX backend.

Each step splits the batch across the devices, each device runs the model on its share, and the gradients
are averaged before the one update: the same training as on one device, `n` times the hardware. JAX shards a
batch only in equal parts, so batch sizes must divide by the number of devices, training drops its last
short batch (as it does by default), and a short last validation batch is padded with rows of weight 0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import numpy as np

from pilah.config import Config
from pilah.errors import ConfigError
from pilah.images import pad_batch


def device_count(config: Config) -> int:
    """The devices a run trains on (1 unless `data_parallel`), after checking that the config can use them."""
    if config.train.distribute == "none":
        return 1
    if keras.backend.backend() != "jax":
        raise ConfigError(
            f"train.distribute=data_parallel needs the JAX backend (this is {keras.backend.backend()!r}): "
            "pip install 'jax[cpu]' (or jax[cuda12]) and set KERAS_BACKEND=jax"
        )
    devices = len(keras.distribution.list_devices())
    for name, size in (("train.batch_size", config.train.batch_size), ("eval.batch_size", config.eval.batch_size)):
        if size % devices:
            raise ConfigError(f"{name}={size} does not split over {devices} devices: make it a multiple of {devices}")
    if not config.train.drop_last_batch:
        raise ConfigError("train.distribute=data_parallel needs train.drop_last_batch=true (equal shards)")
    return devices


@contextlib.contextmanager
def distributed(config: Config) -> Iterator[int]:
    """Build and train inside this block to spread the work over the devices; yields their number. Outside
    it (evaluation, export, prediction) Keras runs as usual on one device."""
    count = device_count(config)
    if config.train.distribute == "none":
        yield count
        return
    with keras.distribution.DataParallel(devices=keras.distribution.list_devices()).scope():
        yield count


class MappedBatches(keras.utils.PyDataset):
    """Another PyDataset's batches, each changed by `change` (same length, same epochs)."""

    def __init__(self, batches: keras.utils.PyDataset) -> None:
        super().__init__(workers=batches.workers, use_multiprocessing=False)
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()

    def __getitem__(self, index: int):
        return self.change(*self.batches[index])

    def change(self, inputs, labels):
        raise NotImplementedError


class PaddedBatches(MappedBatches):
    """Batches whose sizes divide by `devices`: a short batch gains all-zero rows with sample weight 0, so
    accuracy is exact; the loss counts those rows as 0, i.e. it reads n / (n + pad) of its value
    (pad < devices: 1 row in 3,039 on two devices)."""

    def __init__(self, batches: keras.utils.PyDataset, devices: int) -> None:
        super().__init__(batches)
        self.devices = devices

    def change(self, inputs, labels):
        count = len(labels)
        pad = -count % self.devices
        weights = np.concatenate([np.ones(count, np.float32), np.zeros(pad, np.float32)])
        return (*keras.tree.map_structure(lambda a: pad_batch(np.asarray(a), count + pad), (inputs, labels)), weights)


class HostAugmentedBatches(MappedBatches):
    """Training batches augmented here, before they are split over the devices. XLA on the CPU deadlocks when
    the model's own geometric augmentation runs on a sharded batch (one device never reaches the gradients'
    all-reduce; seen with jax 0.10.2 on 2 cores), so data-parallel training augments on the host instead."""

    def __init__(self, batches: keras.utils.PyDataset, augment: keras.Model) -> None:
        super().__init__(batches)
        self.augment = augment

    def change(self, inputs, labels):
        return keras.ops.convert_to_numpy(self.augment(inputs, training=True)), labels


def validation_batches(batches: keras.utils.PyDataset) -> keras.utils.PyDataset:
    """`batches` as they are on one device; padded to equal shards under a data-parallel distribution."""
    distribution = keras.distribution.distribution()
    if not isinstance(distribution, keras.distribution.DataParallel):
        return batches
    return PaddedBatches(batches, distribution.device_mesh.devices.size)
