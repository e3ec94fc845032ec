"""A run directory holds everything that produced its numbers; these helpers name and write its files."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pilah.config import Config
from pilah.data.split import ManifestRow, read_manifest
from pilah.errors import RunError, UsageError
from pilah.files import read_json, write_text


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def evaluation(self) -> Path:
        """Evaluation settings changed after training (`pilah evaluate --set eval.KEY=VALUE`): config.yaml keeps
        saying what trained the model, this file what evaluated it."""
        return self.root / "evaluation.yaml"

    @property
    def labels(self) -> Path:
        return self.root / "labels.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def best_model(self) -> Path:
        return self.root / "best.keras"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def folders(self) -> Path:
        """The data folders and their images per split (`pilah train --data A --data B`)."""
        return self.root / "folders.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def checkpoints(self) -> Path:
        """Resume state: the last finished epoch's model and optimiser, and the callbacks' state."""
        return self.root / "checkpoints"

    @property
    def last_model(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def best_loss_weights(self) -> Path:
        return self.checkpoints / "best_val_loss.weights.h5"

    @property
    def state(self) -> Path:
        return self.checkpoints / "state.json"


def next_run_dir(parent: Path, name: str = "train") -> Path:
    """`runs/train`, then `runs/train2`, `runs/train3`, ... (never overwrite an earlier run)."""
    candidate, n = parent / name, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{name}{n}"
    return candidate


@dataclass
class Run:
    """A finished or interrupted training run, read back from its folder."""

    paths: RunPaths
    config: Config
    classes: list[str]
    manifest: list[ManifestRow]

    @classmethod
    def open(cls, root: str | Path) -> Run:
        paths = RunPaths(Path(root))
        for required in (paths.config, paths.labels, paths.manifest):
            if not required.is_file():
                raise RunError(f"{paths.root} is not a run directory: {required.name} is missing")
        config = Config.load(paths.config)
        if paths.evaluation.is_file():
            config = Config.from_dict(config.to_dict() | {"eval": yaml.safe_load(paths.evaluation.read_text())["eval"]})
        return cls(paths, config, read_json(paths.labels), read_manifest(paths.manifest))

    def set_evaluation(self, assignments: list[str]) -> None:
        """Change evaluation settings (`eval.KEY=VALUE` only) and keep them in `evaluation.yaml`."""
        if not all(assignment.strip().startswith("eval.") for assignment in assignments):
            raise UsageError("pilah evaluate --set changes evaluation settings only: --set eval.KEY=VALUE")
        self.config = self.config.override(assignments)
        write_text(self.paths.evaluation, yaml.safe_dump({"eval": self.config.eval.model_dump(mode="json")}))

    @property
    def data_roots(self) -> list[Path]:
        """The data folders, in the order of the manifest's `source` column."""
        if not self.config.data.root:
            raise RunError(f"{self.paths.config} has no data.root; pass --data DIR")
        return [Path(self.config.data.root), *map(Path, self.config.data.extra_roots)]

    def image_paths(self, rows: list[ManifestRow]) -> list[Path]:
        roots = self.data_roots
        return [roots[r.source] / r.path for r in rows]

    def split_rows(self, split: str) -> list[ManifestRow]:
        return [r for r in self.manifest if r.split == split]

    def class_indices(self, split: str) -> list[int]:
        """The label of every image of a split as its position in the model's output, in manifest order."""
        return self.indices_of(self.split_rows(split))

    def indices_of(self, rows: list[ManifestRow]) -> list[int]:
        index = {label: i for i, label in enumerate(self.classes)}
        return [index[r.label] for r in rows]


@dataclass
class TrainState:
    """What a resumed run needs beyond the model: progress and the callbacks' memory."""

    epochs_done: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint_best: float | None = None
    early_stopping: dict[str, Any] = field(default_factory=dict)
    reduce_lr: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    cache_views_reused: int = 0  # cached mode: (split, view) trunk outputs found in the cache when the run began
    cache_views_filled: int = 0  # ... and computed for it


def resume_point(root: Path) -> tuple[Run, TrainState]:
    """The run to resume and where it stopped; a run that cannot be resumed fails here, before Keras loads."""
    run = Run.open(root)
    if not run.paths.state.is_file() or not run.paths.last_model.is_file():
        raise RunError(f"{root} has no finished epoch to resume from; start it again with pilah train")
    state = TrainState(**read_json(run.paths.state))
    if state.finished:
        raise RunError(f"{root} already finished training ({state.epochs_done} epochs)")
    return run, state


def file_logger(path: Path) -> logging.Logger:
    """The `pilah` logger, writing to the console and appending to the run's `train.log`."""
    logger = logging.getLogger("pilah")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        if isinstance(handler, logging.FileHandler):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if not any(type(h) is logging.StreamHandler for h in logger.handlers):
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console)
    return logger
