"""End to end on real images: train, interrupt, resume, evaluate, reload in a fresh process."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import FAST, SAMPLE, pilah
from pilah.config import Config, ModelConfig
from pilah.data.split import ManifestRow
from pilah.images import load_rgb
from pilah.modeling.anatomy import boundary_parts, split_at_boundary
from pilah.modeling.xception import build_model
from pilah.runs import Run, RunPaths
from pilah.training.cached import FeatureCache, augment_identity, cache_key, trunk_outputs, write_view
from pilah.training.fit import batches_for, class_weights, learning_rate, prepare_run, read_history

pytestmark = pytest.mark.slow  # trains, starts a browser or builds a virtual environment

FIGURES = {
    "training_curves.png", "gap_analysis.png", "performance_comparison.png", "generalization.png",
    "confusion_matrix.png", "confusion_matrix_normalized.png", "per_class_f1.png", "reliability.png",
}  # fmt: skip


def test_run_folder_holds_everything(trained_run: Path):
    for name in (
        "config.yaml",
        "labels.json",
        "manifest.csv",
        "history.csv",
        "best.keras",
        "train.log",
        "metrics.json",
        "predictions.csv",
    ):
        assert (trained_run / name).is_file(), name
    assert json.loads((trained_run / "labels.json").read_text())[0] == "battery"
    history = read_history(trained_run / "history.csv")
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= history[0].keys()
    assert "epoch 2/2" in (trained_run / "train.log").read_text()


def test_evaluation_metrics_and_figures(trained_run: Path):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert set(metrics["splits"]) == {"train", "val", "test"}
    assert metrics["splits"]["test"]["images"] == 18
    for scores in metrics["splits"].values():
        assert 0 <= scores["accuracy"] <= 1 and scores["loss"] > 0 and 0 <= scores["ece"] <= 1
    test = metrics["test"]
    assert len(test["per_class"]) == 12 and 0 <= test["macro_f1"] <= 1
    assert np.asarray(test["confusion_matrix"]).sum() == 18
    assert metrics["temperature"] > 0
    assert {p.name for p in (trained_run / "plots").glob("*.png")} >= FIGURES
    for figure in FIGURES:
        width, height = Image.open(trained_run / "plots" / figure).size
        assert width >= 500 and height >= 400


def test_training_seed_reshuffles_without_touching_the_split_or_the_cache(trained_run: Path):
    run = Run.open(trained_run)
    reseeded = Run(run.paths, run.config.override(["train.seed=7"]), run.classes, run.manifest)
    assert run.config.training_seed == run.config.data.seed and reseeded.config.training_seed == 7
    default, other = (batches_for(r, "train", training=True) for r in (run, reseeded))
    assert default.paths == other.paths  # the same training images...
    assert not np.array_equal(default.order, other.order)  # ...in another order
    assert cache_key(reseeded) == cache_key(run)  # cached trunk outputs are shared across training seeds


def test_mixup_blends_training_batches_only(trained_run: Path):
    run = Run.open(trained_run)
    mixed_run = Run(run.paths, run.config.override(["train.mixup_alpha=0.4"]), run.classes, run.manifest)
    plain, mixed = (batches_for(r, "train", training=True) for r in (run, mixed_run))
    (images, labels), (blend, soft) = plain[0], mixed[0]
    np.testing.assert_array_equal(mixed[0][0], blend)  # the same blend on every call (worker threads, resume)
    np.testing.assert_allclose(soft.sum(axis=1), 1, rtol=1e-6)
    weight = soft[np.arange(len(soft)), labels.argmax(axis=1)].min()  # an image keeps this much of its label
    assert 0 < weight < 1
    for i, row in enumerate(soft - weight * labels):  # the rest is its partner's label
        partners = np.flatnonzero(np.isclose(labels, row / (1 - weight), atol=1e-4).all(axis=1))
        mixes = [weight * images[i] + (1 - weight) * images[j] for j in partners]
        assert any(np.allclose(blend[i], mix, atol=1e-2) for mix in mixes), i
    val_plain, val_mixed = batches_for(run, "val")[0], batches_for(mixed_run, "val")[0]
    np.testing.assert_array_equal(val_plain[0], val_mixed[0])  # evaluation batches are never mixed


def test_pilah_evaluate_recomputes_the_same_numbers(trained_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)  # evaluate writes its files anew: on a copy, as trained_run is shared
    before = json.loads((run / "metrics.json").read_text())
    pilah("evaluate", run)
    after = json.loads((run / "metrics.json").read_text())
    assert after["splits"] == before["splits"]


def test_model_reloads_in_a_fresh_process_with_the_same_probabilities(trained_run: Path, tmp_path: Path):
    images = np.stack([load_rgb(p, 96) for p in sorted(SAMPLE.glob("*/*.jpg"))[:6]]).astype("float32")
    np.save(tmp_path / "images.npy", images)
    here = keras.saving.load_model(trained_run / "best.keras").predict_on_batch(images)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        model = keras.saving.load_model({str(trained_run / "best.keras")!r})
        np.save({str(tmp_path / "p.npy")!r}, model.predict_on_batch(np.load({str(tmp_path / "images.npy")!r})))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    assert np.allclose(np.load(tmp_path / "p.npy"), here, atol=1e-6)
    assert np.allclose(here.sum(axis=1), 1, atol=1e-5)


def _train_until_killed(out: Path, *extra: str, stop: signal.Signals = signal.SIGTERM) -> None:
    """Start a 3-epoch run, stop it (`kill`, or Ctrl-C's SIGINT) once epoch 1 is saved, then check it stopped
    cleanly."""
    command = [
        sys.executable,
        "-m",
        "pilah.cli",
        "train",
        "--data",
        str(SAMPLE),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--no-evaluate",
        *FAST,
        *extra,
    ]
    # Ctrl-C reaches a program in a terminal's foreground; a test run started in the background (`cmd &` in a
    # shell without job control) ignores SIGINT, and its children would inherit that.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    state = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + 400
    while not (state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.2)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr


def _check_resumed(out: Path) -> None:
    saved = json.loads((out / "checkpoints" / "state.json").read_text())
    done = saved["epochs_done"]
    assert 1 <= done < 3
    before = read_history(out / "history.csv")
    assert len(before) == done
    result = pilah("train", "--resume", out, "--no-evaluate")
    assert "resuming" in result.stderr + result.stdout
    after = read_history(out / "history.csv")
    assert [row["epoch"] for row in after] == [1, 2, 3]
    assert after[:done] == before  # the epochs done before the interruption were kept, not trained again
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["finished"]
    # the callbacks' memory carried over the interruption: best-so-far and patience count all three epochs
    best_loss_epoch = min(range(3), key=lambda i: after[i]["val_loss"])
    assert state["early_stopping"]["best"] == pytest.approx(after[best_loss_epoch]["val_loss"])
    assert state["early_stopping"]["wait"] == 2 - best_loss_epoch
    assert state["checkpoint_best"] == pytest.approx(max(row["val_accuracy"] for row in after))
    # the optimiser went on counting steps (its state was restored, not started afresh), and so did the schedule
    run = Run.open(out)
    steps = len(batches_for(run, "train", training=True))
    model = keras.saving.load_model(out / "checkpoints" / "last.keras")
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 3 * steps
    schedule = learning_rate(run.config, steps)
    for row in after if callable(schedule) else []:  # a cosine run: the rate of each epoch's last step
        expected = float(keras.ops.convert_to_numpy(schedule(int(row["epoch"]) * steps)))
        assert row["learning_rate"] == pytest.approx(expected, rel=1e-4)
    again = pilah("train", "--resume", out, check=False)
    assert again.returncode == 1 and "already finished" in again.stderr


def test_interrupt_and_resume(tmp_path: Path):
    out = tmp_path / "run"
    _train_until_killed(out, "--set", "train.schedule=cosine", "--lr", "0.01", stop=signal.SIGINT)
    _check_resumed(out)


def test_cached_mode_interrupt_resume_and_evaluate(tmp_path: Path):
    out = tmp_path / "cached"
    cache = tmp_path / "cache"
    cached = [
        "--set",
        "train.mode=cached",
        "--set",
        "train.cached_views=1",
        "--set",
        "train.cached_clean_view=true",
        "--set",
        "train.class_weight=balanced",
        "--set",
        f"train.cache_dir={cache}",
    ]
    _train_until_killed(out, *cached)
    _check_resumed(out)
    done = sorted(p.name for p in cache.glob("*/*.done"))
    parts = boundary_parts(build_model(ModelConfig(weights="none"), 12, 96), -20)
    # clean + augmented train view, clean val view; one file per boundary tensor
    assert done == sorted(
        f"{view}-{part}.done" for view in ("train-view0", "train-view1", "val-view0") for part in parts
    )
    pilah("evaluate", out)
    metrics = json.loads((out / "metrics.json").read_text())
    history = read_history(out / "history.csv")
    best = max(row["val_accuracy"] for row in history)
    # the assembled full model, run on the images, scores what the trained part scored on the cache
    assert abs(metrics["splits"]["val"]["accuracy"] - best) < 1e-6


def test_feature_cache_writes_only_the_parts_it_lacks(tmp_path: Path):
    shallow = FeatureCache(tmp_path, {"layer105": (2,)})
    (array,) = shallow.create("train", 1, 3).values()
    array[:] = 7
    array.flush()
    shallow.mark_complete("train", 1)
    deep = FeatureCache(tmp_path, {"layer111": (2,), "layer105": (2,)})
    assert not deep.is_complete("train", 1) and deep.missing("train", 1) == ["layer111"]
    assert list(deep.create("train", 1, 3)) == ["layer111"]  # the shared part is neither reopened nor truncated
    assert np.all(deep.open("train", 1)[1] == 7)


def test_write_view_caches_the_trunk_outputs_of_the_view_it_is_given(tmp_path: Path):
    config = Config().override(["model.weights=none", "data.image_size=96", "train.mode=cached"])
    run = prepare_run(config, SAMPLE, tmp_path / "run")
    full = build_model(config.model, len(run.classes), 96)
    trunk, _ = split_at_boundary(full, -20)
    cache = FeatureCache(tmp_path / "cache", boundary_parts(full, -20))
    batches = batches_for(run, "val")
    write_view(run, trunk, cache, batches, ("val-mirrored", 0), partial(np.flip, axis=2))
    assert cache.is_complete("val-mirrored", 0)
    images = np.concatenate([batches[i][0] for i in range(len(batches))])
    expected = trunk.predict_on_batch(images[:, :, ::-1])
    unmirrored = trunk.predict_on_batch(images)
    for cached, want, other in zip(cache.open("val-mirrored", 0), expected, unmirrored, strict=True):
        assert cached.shape == want.shape
        error = np.abs(cached - want).max()  # float16 rounding only
        assert error <= 1e-3 * np.abs(want).max() < np.abs(cached - other).max()


def test_balanced_class_weights_undo_the_imbalance(tmp_path: Path):
    config = Config.from_dict({"train": {"class_weight": "balanced"}})
    rows = [ManifestRow(f"{c}/{i}.jpg", c, "train", "0", f"{c}{i}") for c, n in (("a", 6), ("b", 2)) for i in range(n)]
    rows.append(ManifestRow("b/val.jpg", "b", "val", "0", "v"))  # other splits do not count
    weights = class_weights(Run(RunPaths(tmp_path), config, ["a", "b"], rows))
    assert weights == {0: 8 / (2 * 6), 1: 8 / (2 * 2)}
    assert weights[0] * 6 == weights[1] * 2  # each class carries the same total weight
    assert class_weights(Run(RunPaths(tmp_path), Config(), ["a", "b"], rows)) is None


@pytest.mark.parametrize(("fine_tune_at", "parts"), [(-20, 2), (-26, 1)])
def test_trunk_outputs_pad_the_last_batch_without_changing_results(fine_tune_at: int, parts: int):
    full = build_model(ModelConfig(weights="none"), 12, 96)
    trunk, _ = split_at_boundary(full, fine_tune_at)  # -26 cuts between two blocks: one boundary tensor
    images = np.random.default_rng(0).uniform(0, 255, (3, 96, 96, 3)).astype("float32")
    padded = trunk_outputs(trunk, images, batch_size=8)
    direct = trunk.predict_on_batch(images)
    direct = direct if parts > 1 else [direct]
    assert [p.shape for p in padded] == [(3, 6, 6, 728)] * parts
    for got, want in zip(padded, direct, strict=True):
        assert np.allclose(got, want, atol=1e-5)


def test_cosine_schedule_warms_up_then_decays():
    config = Config()
    config.train.schedule, config.train.learning_rate, config.train.epochs = "cosine", 1e-3, 10
    config.train.warmup_epochs, config.train.min_learning_rate = 2, 1e-6
    schedule = learning_rate(config, steps_per_epoch=100)

    def rate(step):
        return float(keras.ops.convert_to_numpy(schedule(step)))

    assert rate(0) == pytest.approx(1e-6)
    assert rate(100) == pytest.approx((1e-6 + 1e-3) / 2, rel=1e-3)  # half-way up the warm-up
    assert rate(200) == pytest.approx(1e-3)
    assert rate(600) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2, rel=1e-3)  # half-way down the cosine
    assert rate(1000) == pytest.approx(1e-6, rel=1e-3)
    config.train.warmup_epochs = 0
    assert float(keras.ops.convert_to_numpy(learning_rate(config, 100)(0))) == pytest.approx(1e-3)


def test_the_cache_key_ignores_augmentation_settings_added_later_while_they_are_off():
    """Caches made before brightness and contrast existed keep their key; turning either on changes it."""
    config = Config()
    seed_settings = {"rotation_degrees", "width_shift", "height_shift", "zoom", "horizontal_flip", "fill_mode"}
    assert set(augment_identity(config)) == seed_settings
    config.model.augment.contrast = 0.2
    assert set(augment_identity(config)) == seed_settings | {"contrast"}
