"""One typed configuration for a run, with the seed project's values as defaults.

A run saves its config as `config.yaml`; `pilah train --config FILE --set section.key=value` overrides it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class DataConfig:
    """Where the images are and how they are split."""

    root: str | None = None  # folder-per-class data set; stored so `pilah evaluate` can find the images
    image_size: int = 224  # the seed trained at 224x224
    train_fraction: float = 0.6  # the seed's 60/20/20 split
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 42
    # "grouped": exact and near copies stay in one split (no leak). "random": stratified by class only, copies
    # ignored, as the seed project split; its test images can have copies in training, so its accuracy is
    # comparable with the seed's 96.25 %, not with a grouped split's.
    split_strategy: str = "grouped"
    # Two images are near duplicates (kept in one split) when their 64-bit pHashes differ in at most
    # this many bits AND their 16x16 colour thumbnails differ by at most this mean absolute value
    # (0-255). -1 turns near-duplicate search off. Chosen on garbage12: see README "Duplicates".
    near_duplicate_distance: int = 8
    near_duplicate_color_difference: float = 6.0


@dataclass
class AugmentConfig:
    """The seed's conservative augmentation (Keras ImageDataGenerator values)."""

    rotation_degrees: float = 20.0
    width_shift: float = 0.1
    height_shift: float = 0.1
    zoom: float = 0.1
    horizontal_flip: bool = True
    fill_mode: str = "nearest"  # ImageDataGenerator's default
    # Photometric jitter (not in the seed; 0 = off): random brightness and contrast by up to this fraction,
    # for photos taken in other light than the data set's.
    brightness: float = 0.0
    contrast: float = 0.0


@dataclass
class ModelConfig:
    """The seed's architecture: Xception base, last 20 layers trainable, a two-layer dense head."""

    backbone: str = "xception"
    weights: str = "imagenet"  # "imagenet" (download), a .weights.h5 path (offline), or "none"
    fine_tune_at: int = -20  # base layers from this index on are trainable
    head_units: tuple[int, ...] = (256, 128)
    head_dropout: tuple[float, ...] = (0.6, 0.5)
    l2: float = 0.01
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrainConfig:
    """The seed's optimisation recipe."""

    mode: str = "fit"  # "fit": plain model.fit (GPU); "cached": frozen trunk run once, cached (CPU)
    # Weight initialisation, shuffling and dropout. None: data.seed. Set it to retrain on the same split
    # (and the same cached views) with other randomness, e.g. to measure run-to-run noise.
    seed: int | None = None
    learning_rate: float = 1e-5  # Adam
    schedule: str = "plateau"  # "plateau": ReduceLROnPlateau as the seed; "cosine": cosine decay
    warmup_epochs: float = 0.0  # cosine only: the rate rises linearly from min_learning_rate over these epochs
    batch_size: int = 32
    epochs: int = 50
    label_smoothing: float = 0.0
    # Mixup: blend each training batch with a shuffled copy of itself, labels too, by lambda ~ Beta(a, a).
    # 0: off (the seed). In cached mode it blends the cached trunk outputs ("manifold mixup"), so the
    # trained layers see new inputs every epoch although the augmented views are fixed.
    mixup_alpha: float = 0.0
    class_weight: str = "none"  # "none", or "balanced": each class weighs n_images / (n_classes * n_class)
    early_stopping_patience: int = 10  # on val_loss, restoring the best weights
    checkpoint_monitor: str = "val_accuracy"  # best model kept on this metric
    reduce_lr_factor: float = 0.2  # ReduceLROnPlateau on val_loss
    reduce_lr_patience: int = 5
    min_learning_rate: float = 1e-7
    drop_last_batch: bool = True  # fixed batch shapes: XLA on a GPU compiles each new shape
    workers: int = 2  # image-decoding threads
    cached_views: int = 3  # cached mode: augmented views of each training image
    cached_clean_view: bool = False  # cached mode: the un-augmented image is one more training view
    cache_dir: str = "cache"  # cached mode: where trunk outputs are kept for reuse across runs


@dataclass
class EvalConfig:
    """Evaluation and the seed's gap-analysis thresholds."""

    ece_bins: int = 15
    accuracy_gap_threshold: float = 0.05  # train - val accuracy above this reads as over-fitting
    loss_gap_threshold: float = 0.10  # val - train loss above this reads as over-fitting
    batch_size: int = 32
    # Results below the confidence at which validation predictions are right this often are
    # flagged "uncertain" (the threshold is chosen on the validation split, after temperature scaling).
    confident_accuracy: float = 0.99
    # Test-time augmentation: predict each image and its left-right mirror and average the probabilities
    # (the seed trains with random flips). Off in the seed; it doubles the cost of a prediction. Evaluation,
    # the temperature, the model card and every prediction from the packaged model follow this setting.
    flip_tta: bool = False


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def training_seed(self) -> int:
        return self.data.seed if self.train.seed is None else self.train.seed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(_plain(self.to_dict()), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        return _build(cls, values, "")

    @classmethod
    def load(cls, path: str | Path) -> Config:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
        return cls.from_dict(values)

    def override(self, assignments: list[str]) -> Config:
        """Apply `section.key=value` strings (values parsed as YAML) and return a new config."""
        values = self.to_dict()
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep:
                raise ConfigError(f"expected section.key=value, got {assignment!r}")
            *parents, leaf = key.strip().split(".")
            node = values
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown config section {key!r}")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"unknown config key {key!r}")
            node[leaf] = yaml.safe_load(raw)
        return Config.from_dict(values)


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


def _plain(value: Any) -> Any:
    """Tuples become lists so the YAML stays readable and safe-loadable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in values.items()}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping")
        return _build(hint, value, key + ".")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        return tuple(_coerce(item, v, key) for v in value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and value is not None:
        return str(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
