"""`train.distribute=data_parallel`: Keras's DataParallel over two virtual CPU devices (JAX backend), in cached
and in plain fit mode, against the same run on one device, interrupted and resumed."""

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from test_train import _check_resumed, _train_until_killed

from conftest import FAST, SAMPLE, pilah, shared_folder
from pilah.training.distribute import PaddedBatches
from pilah.training.fit import read_history

pytestmark = pytest.mark.slow
jax_backend = pytest.mark.skipif(not importlib.util.find_spec("jax"), reason="JAX is an extra: pip install pilah[jax]")
TWO_DEVICES = "--xla_force_host_platform_device_count=2"
DATA_PARALLEL = ["--set", "train.distribute=data_parallel"]


@pytest.fixture()
def on_jax(monkeypatch, tmp_path_factory):
    """The `pilah` processes started by this test run on JAX; `devices(2)` gives them two CPU devices.

    They share XLA's compiled programs through JAX's persistent compilation cache, kept in the test session's
    shared folder: every program, not only those that take over a second to compile (JAX's default), as most of a
    run's compiling is small programs (one per weight shape to initialise, one per augmentation step). A resumed
    run and its evaluation run the very programs the first run compiled; only compiling them again is skipped
    (about 14 of 30 s of processor time in a one-epoch run here). The size limit turns on JAX's file lock, as two
    test processes may write at once."""
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(shared_folder(tmp_path_factory) / "jax-cache"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_MAX_SIZE", str(2**30))
    return lambda count: monkeypatch.setenv("XLA_FLAGS", TWO_DEVICES if count == 2 else "")


@jax_backend
def test_two_devices_follow_the_one_device_loss_curve(tmp_path: Path, on_jax):
    """Cached mode, no dropout: the same views in the same order. Two one-device runs differ too (XLA's threaded
    sums): by 2.4 % in training loss at epoch 3 here; one against two devices by up to 3.4 %, and by under 1 %
    in validation loss."""
    settings = [*FAST, "--lr", "0.001", "--epochs", "3", "--no-evaluate", "--set", "model.head_dropout=[0,0]"]
    settings += ["--set", "train.mode=cached", "--set", "train.cached_views=1", "--set", f"train.cache_dir={tmp_path}"]
    curves = {}
    for devices, extra in ((1, []), (2, DATA_PARALLEL)):
        on_jax(devices)
        out = tmp_path / f"devices{devices}"
        result = pilah("train", "--data", SAMPLE, "--out", out, *settings, *extra)
        assert f"training on {devices} device(s)" in result.stderr + result.stdout
        curves[devices] = read_history(out / "history.csv")
    one, two = curves[1], curves[2]
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        for key, tolerance in (("loss", 0.05), ("val_loss", 0.02)):
            assert abs(a[key] - b[key]) < tolerance * abs(a[key]), (key, one, two)
    assert two[-1]["loss"] < two[0]["loss"] and two[-1]["val_loss"] < two[0]["val_loss"]  # it learns


@jax_backend
def test_data_parallel_fit_interrupts_resumes_and_saves_the_whole_model(tmp_path: Path, on_jax):
    on_jax(2)
    out = tmp_path / "run"
    _train_until_killed(out, *DATA_PARALLEL, "--lr", "0.01")
    _check_resumed(out)
    best = keras.saving.load_model(out / "best.keras")
    assert best.get_layer("augmentation")  # the checkpoint is the whole model, its augmentation included
    pilah("evaluate", out)  # evaluation runs as usual, on one device


def test_data_parallel_needs_the_jax_backend_and_says_so_before_making_a_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    out = tmp_path / "run"
    result = pilah("train", "--data", SAMPLE, "--out", out, *FAST, *DATA_PARALLEL, check=False)
    assert result.returncode == 2 and "needs the JAX backend" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_short_validation_batch_is_padded_to_equal_shards_with_weight_zero():
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            count = 4 if index == 0 else 3
            images = np.arange(count * 2, dtype=np.float32).reshape(count, 2) + 10 * index
            return (images, images + 1), np.eye(3, dtype=np.float32)[np.arange(count) % 3]

    padded = PaddedBatches(Batches(), devices=2)
    (images, shifted), labels, weights = padded[1]
    assert images.shape == shifted.shape == (4, 2) and labels.shape == (4, 3)
    np.testing.assert_array_equal(weights, [1, 1, 1, 0])
    np.testing.assert_array_equal(images[:3], Batches()[1][0][0])
    (_, _), _, full = padded[0]
    np.testing.assert_array_equal(full, [1, 1, 1, 1])
