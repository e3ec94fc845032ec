"""Start or resume a training run with the strategy its config names (`train.mode`).

- `fit`: plain `model.fit`, every image through the whole network each epoch (what a GPU does well);
- `cached`: the frozen trunk runs once per image view and its outputs are cached (what 2 CPU cores can do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from pilah.config import Config
from pilah.data.split import SPLITS, folder_distribution
from pilah.runs import Run, TrainState, file_logger
from pilah.training import cached, distribute, fit


@dataclass(frozen=True)
class Strategy:
    start: Callable[[Run], Run]
    resume: Callable[[Run, TrainState], Run]


STRATEGIES = {
    "fit": Strategy(fit.train_fit, fit.resume_fit),
    "cached": Strategy(cached.train_cached, cached.resume_cached),
}


def train(config: Config, data: Path | list[Path], out: Path | None = None, manifest: Path | None = None) -> Run:
    """Start a new run: scan and split the data folders (or take `manifest`), build the seed's model, train."""
    with distribute.distributed(config) as devices:  # a config that cannot train here fails before the run folder
        keras.utils.set_random_seed(config.training_seed)
        run = fit.prepare_run(config, data, out, manifest)
        logger = file_logger(run.paths.log)
        logger.info(f"run {run.paths.root}: {len(run.manifest)} images, {len(run.classes)} classes")
        for root, counts in zip(run.data_roots, folder_distribution(run.manifest, len(run.data_roots)), strict=True):
            logger.info(f"  from {root}: {counts['all']} images")
        for split in SPLITS:
            logger.info(f"  {split}: {len(run.split_rows(split))} images")
        logger.info(f"training on {devices} device(s): {config.train.distribute}")
        return STRATEGIES[config.train.mode].start(run)


def resume(run: Run, state: TrainState) -> Run:
    """Continue an interrupted run from its last finished epoch (`runs.resume_point` finds them)."""
    keras.utils.set_random_seed(run.config.training_seed + state.epochs_done)
    file_logger(run.paths.log).info(f"resuming {run.paths.root} after epoch {state.epochs_done}")
    with distribute.distributed(run.config):
        return STRATEGIES[run.config.train.mode].resume(run, state)
