"""Train the seed's model with the seed's recipe, into a run directory that can be resumed."""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import keras

from pilah import interrupts
from pilah.config import Config
from pilah.data import scan as scanning
from pilah.data import split as splitting
from pilah.data.loader import ImageBatches
from pilah.data.split import ManifestRow
from pilah.errors import RunError
from pilah.files import atomic_write, read_csv, write_csv, write_json
from pilah.modeling.anatomy import copy_weights
from pilah.modeling.xception import PREPROCESS, build_augmentation, build_model
from pilah.progress import Progress
from pilah.runs import Run, RunPaths, TrainState, file_logger, next_run_dir
from pilah.training.distribute import HostAugmentedBatches, validation_batches

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def prepare_run(config: Config, data: Path | list[Path], out: Path | None, manifest: Path | None = None) -> Run:
    """Create a new run folder: config, scanned and split manifest (over all data folders), labels."""
    data_dirs = [Path(d) for d in data] if isinstance(data, list) else [Path(data)]
    out = out or next_run_dir(Path("runs"))
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} already holds a run; pass another --out, or --resume {out}")
    out.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(out)
    config.data.root = str(data_dirs[0].resolve())
    config.data.extra_roots = [str(d.resolve()) for d in data_dirs[1:]]
    if manifest is not None:
        rows = splitting.read_manifest(manifest)
        classes = sorted({r.label for r in rows})
    else:
        scanned = scanning.scan(data_dirs, config.data, config.train.workers, Progress("scanning"))
        rows, classes = splitting.split(scanned, config.data), scanned.classes
    splitting.write_manifest(rows, paths.manifest)
    config.save(paths.config)
    write_json(paths.labels, classes)
    table = splitting.distribution(rows, classes)
    splitting.write_distribution(table, out / "class_distribution.csv")
    folders = splitting.folder_distribution(rows, len(data_dirs))
    write_json(paths.folders, [{"folder": str(d.resolve()), **n} for d, n in zip(data_dirs, folders, strict=True)])
    from pilah.data.charts import class_distribution  # matplotlib: only where a chart is drawn

    class_distribution(table, paths.plots / "class_distribution.png", "Images per class")
    return Run(paths, config, classes, rows)


def batches_for(
    run: Run, split: str, training: bool = False, epoch: int = 0, rows: list[ManifestRow] | None = None
) -> ImageBatches:
    """Training batches shuffle per epoch and keep one shape; evaluation batches keep manifest order.

    `rows`: some of the split's images instead of all of them."""
    rows = run.split_rows(split) if rows is None else rows
    if not rows:
        raise RunError(f"the {split} split is empty: too few images for the split fractions")
    cfg = run.config
    batch_size = cfg.train.batch_size if training else cfg.eval.batch_size
    batches = ImageBatches(
        run.image_paths(rows),
        run.indices_of(rows),
        num_classes=len(run.classes),
        image_size=cfg.data.image_size,
        batch_size=batch_size,
        shuffle=training,
        drop_last=training and cfg.train.drop_last_batch and len(rows) >= batch_size,
        seed=cfg.training_seed,
        workers=cfg.train.workers,
        mixup_alpha=cfg.train.mixup_alpha if training else 0.0,
    )
    batches.set_epoch(epoch)
    return batches


def learning_rate(config: Config, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The seed's fixed rate (cut on plateaus by a callback), or a cosine decay over all epochs."""
    cfg = config.train
    if cfg.schedule == "cosine":
        warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
        if not warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                cfg.learning_rate,
                decay_steps=max(1, cfg.epochs * steps_per_epoch),
                alpha=cfg.min_learning_rate / cfg.learning_rate,
            )
        return keras.optimizers.schedules.CosineDecay(
            cfg.min_learning_rate,
            decay_steps=max(1, cfg.epochs * steps_per_epoch - warmup_steps),
            alpha=cfg.min_learning_rate / cfg.learning_rate,
            warmup_target=cfg.learning_rate,
            warmup_steps=warmup_steps,
        )
    return cfg.learning_rate


def compile_model(model: keras.Model, config: Config, steps_per_epoch: int) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.train.label_smoothing),
        metrics=["accuracy"],
    )


class RunRecorder(keras.callbacks.Callback):
    """After each epoch: append history, save the resumable checkpoint and state, log with an ETA.

    It runs after the stock callbacks, so at the start of a resumed run it puts back their memory
    (best values, patience counters) that their own `on_train_begin` has just reset.
    """

    def __init__(self, paths: RunPaths, state: TrainState, total_epochs: int, stock: dict[str, Any]):
        super().__init__()
        self.paths = paths
        self.state = state
        self.total_epochs = total_epochs
        self.stock = stock
        self.logger = file_logger(paths.log)
        self.epoch_started = 0.0

    def on_train_begin(self, logs=None) -> None:
        checkpoint, early = self.stock["checkpoint"], self.stock["early_stopping"]
        if self.state.checkpoint_best is not None:
            checkpoint.best = self.state.checkpoint_best
        for callback, saved in (
            (early, self.state.early_stopping),
            (self.stock.get("reduce_lr"), self.state.reduce_lr),
        ):
            for name, value in saved.items():
                setattr(callback, name, value)
        if self.state.early_stopping and self.paths.best_loss_weights.is_file():
            current = self.model.get_weights()
            self.model.load_weights(self.paths.best_loss_weights)
            early.best_weights = self.model.get_weights()
            self.model.set_weights(current)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = dict(logs or {})
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in HISTORY_KEYS if k in logs}}
        seconds = time.perf_counter() - self.epoch_started
        self.state.history.append(row)
        self.state.epochs_done = epoch + 1
        self.state.seconds += seconds
        early, reduce = self.stock["early_stopping"], self.stock.get("reduce_lr")
        self.state.checkpoint_best = _plain(self.stock["checkpoint"].best)
        self.state.early_stopping = {
            "wait": int(early.wait),
            "best": _plain(early.best),
            "best_epoch": int(early.best_epoch),
        }
        if reduce is not None:
            self.state.reduce_lr = {
                "wait": int(reduce.wait),
                "best": _plain(reduce.best),
                "cooldown_counter": int(reduce.cooldown_counter),
            }
        self.paths.checkpoints.mkdir(exist_ok=True)
        if early.best_epoch == epoch:
            atomic_write(self.paths.best_loss_weights, self.model.save_weights)
        atomic_write(self.paths.last_model, self.model.save)
        write_history(self.state.history, self.paths.history)
        write_json(self.paths.state, dataclasses.asdict(self.state))
        remaining = (self.total_epochs - epoch - 1) * self.state.seconds / len(self.state.history)
        metrics = "  ".join(f"{k} {row[k]:.4g}" for k in HISTORY_KEYS if k in row)
        self.logger.info(
            f"epoch {epoch + 1}/{self.total_epochs}  {metrics}  {seconds:.0f}s  "
            f"ETA <= {_duration(remaining)} (early stopping may end sooner)"
        )


class StopBetweenBatches(keras.callbacks.Callback):
    """Raise a Ctrl-C or `kill` received during training before the next batch (`pilah.interrupts`): the epochs
    saved so far stay as they are, and `pilah train --resume` goes on from them. A hook at a batch's start: one at
    its end makes Keras wait for each batch's results (0.8 s more in a 3-epoch test run of 9 s, TensorFlow)."""

    def on_train_batch_begin(self, batch, logs=None) -> None:
        interrupts.raise_if_requested()

    def on_test_batch_begin(self, batch, logs=None) -> None:
        interrupts.raise_if_requested()


class AssembledCheckpoint(keras.callbacks.Callback):
    """Save the complete model, the trained part copied into it, whenever the monitored metric improves (cached
    mode trains the part past the frozen trunk; data-parallel fit the part past the augmentation)."""

    def __init__(self, full: keras.Model, path: Path, monitor: str) -> None:
        super().__init__()
        self.full, self.path, self.monitor = full, path, monitor
        self.higher_is_better = "acc" in monitor
        self.best: float | None = None

    def on_epoch_end(self, epoch, logs=None) -> None:
        current = float((logs or {})[self.monitor])
        improved = self.best is None or (current > self.best if self.higher_is_better else current < self.best)
        if improved:
            self.best = current
            copy_weights(self.model, self.full)
            atomic_write(self.path, self.full.save)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The rate in use now, whether fixed or from a schedule."""
    rate = optimizer.learning_rate
    if callable(rate):
        rate = rate(optimizer.iterations)
    return float(keras.ops.convert_to_numpy(rate))


def _plain(value: Any) -> float | None:
    return None if value is None else float(keras.ops.convert_to_numpy(value))


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def write_history(history: list[dict[str, float]], path: Path) -> None:
    columns = ["epoch", *[k for k in HISTORY_KEYS if any(k in row for row in history)]]
    write_csv(path, columns, ([row.get(k, "") for k in columns] for row in history))


def read_history(path: Path) -> list[dict[str, float]]:
    return [{k: float(v) for k, v in row.items()} for row in read_csv(path)[1]]


def seed_callbacks(run: Run, checkpoint: keras.callbacks.Callback | None = None) -> dict[str, Any]:
    """EarlyStopping(val_loss, restore best), best-model checkpoint, ReduceLROnPlateau(val_loss)."""
    cfg = run.config.train
    callbacks: dict[str, Any] = {
        "early_stopping": keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.early_stopping_patience, restore_best_weights=True
        ),
        "checkpoint": checkpoint
        or keras.callbacks.ModelCheckpoint(run.paths.best_model, monitor=cfg.checkpoint_monitor, save_best_only=True),
    }
    if cfg.schedule == "plateau":
        callbacks["reduce_lr"] = keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss",
            factor=cfg.reduce_lr_factor,
            patience=cfg.reduce_lr_patience,
            min_lr=cfg.min_learning_rate,
        )
    return callbacks


def class_weights(run: Run) -> dict[int, float] | None:
    """`train.class_weight: balanced` weighs each class by n_images / (n_classes * n_class)."""
    choice = run.config.train.class_weight
    if choice == "none":
        return None
    counts = Counter(r.label for r in run.split_rows("train"))
    total = sum(counts.values())
    return {i: total / (len(run.classes) * counts[label]) for i, label in enumerate(run.classes) if counts[label]}


def fit(
    run: Run,
    model: keras.Model,
    state: TrainState,
    train_data: keras.utils.PyDataset | None = None,
    val_data: keras.utils.PyDataset | None = None,
    checkpoint: keras.callbacks.Callback | None = None,
) -> TrainState:
    """`model.fit` with the seed's callbacks and the run recorder; returns once training stops."""
    cfg, paths = run.config, run.paths
    stock = seed_callbacks(run, checkpoint)
    recorder = RunRecorder(paths, state, cfg.train.epochs, stock)
    with interrupts.raised_at_safe_points():
        model.fit(
            train_data or batches_for(run, "train", training=True, epoch=state.epochs_done),
            validation_data=validation_batches(val_data or batches_for(run, "val")),
            epochs=cfg.train.epochs,
            initial_epoch=state.epochs_done,
            callbacks=[*stock.values(), recorder, StopBetweenBatches()],
            class_weight=class_weights(run),
            verbose=1 if sys.stdout.isatty() else 2,
        )
        state.finished = True
        write_json(paths.state, dataclasses.asdict(state))
        recorder.logger.info(f"finished after {state.epochs_done} epochs, {_duration(state.seconds)} of training")
    return state


def train_fit(run: Run) -> Run:
    """Plain `model.fit`: every image through the whole network, fresh augmentation every epoch (GPU)."""
    cfg = run.config
    model = build_model(cfg.model, len(run.classes), cfg.data.image_size)
    if cfg.train.distribute == "data_parallel":
        return _train_augmenting_on_host(run, model, past_augmentation(model), TrainState())
    train_data = batches_for(run, "train", training=True)
    compile_model(model, cfg, len(train_data))
    fit(run, model, TrainState(), train_data)
    return run


def resume_fit(run: Run, state: TrainState) -> Run:
    trained = keras.saving.load_model(run.paths.last_model)
    if run.config.train.distribute == "data_parallel":  # `last.keras` holds the part past the augmentation
        full = build_model(run.config.model, len(run.classes), run.config.data.image_size)
        return _train_augmenting_on_host(run, full, trained, state)
    fit(run, trained, state)
    return run


def past_augmentation(model: keras.Model) -> keras.Model:
    """The model from its pixel scaling on: every weight, no augmentation (they share the weights)."""
    return keras.Model(model.get_layer(PREPROCESS).input, model.output, name=f"{model.name}_past_augmentation")


def _train_augmenting_on_host(run: Run, full: keras.Model, trained: keras.Model, state: TrainState) -> Run:
    """Data-parallel `fit`: the batches are augmented before they are sharded (see `HostAugmentedBatches`), the
    part past the augmentation trains, and the best checkpoint is the whole model."""
    cfg = run.config
    batches = batches_for(run, "train", training=True, epoch=state.epochs_done)
    train_data = HostAugmentedBatches(batches, build_augmentation(cfg.model.augment))
    if getattr(trained, "optimizer", None) is None:  # a new run; a resumed one keeps its optimizer state
        compile_model(trained, cfg, len(train_data))
    checkpoint = AssembledCheckpoint(full, run.paths.best_model, cfg.train.checkpoint_monitor)
    fit(run, trained, state, train_data, checkpoint=checkpoint)
    return run
