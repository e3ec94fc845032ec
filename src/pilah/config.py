"""One typed configuration for a run, with the seed project's values as defaults.

A run saves its config as `config.yaml`; `pilah train --config FILE --set section.key=value` overrides it and
`pilah config` prints it. Pydantic checks every value when the config loads: unknown keys and choices get a
"did you mean" hint.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pilah.errors import ConfigError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    """Where the images are and how they are split."""

    root: str | None = None  # folder-per-class data set; stored so `pilah evaluate` can find the images
    extra_roots: list[str] = Field(default_factory=list)  # more folders with some of root's classes (corrections)
    # A corrections folder among them gives its reviewed photos only ("accepted"), or those not yet reviewed too
    # ("all"; never a rejected one). `pilah data corrections review DIR` reviews them.
    corrections: Literal["accepted", "all"] = "accepted"
    image_size: int = Field(224, ge=32)  # the seed trained at 224x224
    train_fraction: float = Field(0.6, ge=0, le=1)  # the seed's 60/20/20 split
    val_fraction: float = Field(0.2, ge=0, le=1)
    test_fraction: float = Field(0.2, ge=0, le=1)
    seed: int = 42
    # "grouped": exact and near copies stay in one split (no leak). "random": stratified by class only, copies
    # ignored, as the seed project split; its test images can have copies in training, so its accuracy is
    # comparable with the seed's 96.25 %, not with a grouped split's.
    split_strategy: Literal["grouped", "random"] = "grouped"
    # A final fit: after the split, move this share of the validation images (whole duplicate groups, stratified
    # by class) into training. The rest stays validation, for picking the epoch, the temperature and the doubt
    # grades; the test split does not change. 0 = off.
    refit_fraction: float = Field(0.0, ge=0, lt=1)
    # Two images are near duplicates (kept in one split) when their 64-bit pHashes differ in at most
    # this many bits AND their 16x16 colour thumbnails differ by at most this mean absolute value
    # (0-255). -1 turns near-duplicate search off. Chosen on garbage12: see docs/data.md.
    near_duplicate_distance: int = Field(8, ge=-1, le=64)
    near_duplicate_color_difference: float = Field(6.0, ge=0)


class AugmentConfig(Section):
    """The seed's conservative augmentation (Keras ImageDataGenerator values)."""

    rotation_degrees: float = Field(20.0, ge=0)
    width_shift: float = Field(0.1, ge=0, le=1)
    height_shift: float = Field(0.1, ge=0, le=1)
    zoom: float = Field(0.1, ge=0, le=1)
    horizontal_flip: bool = True
    fill_mode: Literal["nearest", "reflect", "wrap", "constant"] = "nearest"  # ImageDataGenerator's default
    # Photometric jitter (not in the seed; 0 = off): random brightness and contrast by up to this fraction,
    # for photos taken in other light than the data set's.
    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)


class ModelConfig(Section):
    """The seed's architecture: Xception base, last 20 layers trainable, a two-layer dense head."""

    backbone: Literal["xception"] = "xception"
    weights: str = "imagenet"  # "imagenet" (download), a .weights.h5 path (offline), or "none"
    fine_tune_at: int = -20  # base layers from this index on are trainable (0: all)
    head_units: tuple[int, ...] = (256, 128)
    head_dropout: tuple[float, ...] = (0.6, 0.5)
    l2: float = Field(0.01, ge=0)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class TrainConfig(Section):
    """The seed's optimisation recipe."""

    mode: Literal["fit", "cached"] = "fit"  # "fit": plain model.fit (GPU); "cached": frozen trunk run once (CPU)
    # Weight initialisation, shuffling and dropout. None: data.seed. Set it to retrain on the same split
    # (and the same cached views) with other randomness, e.g. to measure run-to-run noise.
    seed: int | None = None
    learning_rate: float = Field(1e-5, gt=0)  # Adam
    schedule: Literal["plateau", "cosine"] = "plateau"  # plateau: ReduceLROnPlateau as the seed; cosine decay
    warmup_epochs: float = Field(0.0, ge=0)  # cosine only: the rate rises linearly from min_learning_rate first
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(50, ge=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # Mixup: blend each training batch with a shuffled copy of itself, labels too, by lambda ~ Beta(a, a).
    # 0: off (the seed). In cached mode it blends the cached trunk outputs ("manifold mixup").
    mixup_alpha: float = Field(0.0, ge=0)
    class_weight: Literal["none", "balanced"] = "none"  # balanced: each class weighs n / (n_classes * n_class)
    early_stopping_patience: int = Field(10, ge=1)  # on val_loss, restoring the best weights
    checkpoint_monitor: Literal["val_accuracy", "val_loss"] = "val_accuracy"  # best model kept on this metric
    reduce_lr_factor: float = Field(0.2, gt=0, lt=1)  # ReduceLROnPlateau on val_loss
    reduce_lr_patience: int = Field(5, ge=1)
    min_learning_rate: float = Field(1e-7, gt=0)
    drop_last_batch: bool = True  # fixed batch shapes: XLA on a GPU compiles each new shape
    workers: int = Field(2, ge=1)  # image-decoding threads
    cached_views: int = Field(3, ge=1)  # cached mode: augmented views of each training image
    cached_clean_view: bool = False  # cached mode: the un-augmented image is one more training view
    cache_dir: str = "cache"  # cached mode: where trunk outputs are kept for reuse across runs
    # "data_parallel": each batch split over all local devices (keras.distribution.DataParallel, JAX backend)
    distribute: Literal["none", "data_parallel"] = "none"


class EvalConfig(Section):
    """Evaluation and the seed's gap-analysis thresholds."""

    ece_bins: int = Field(15, ge=1)
    accuracy_gap_threshold: float = 0.05  # train - val accuracy above this reads as over-fitting
    loss_gap_threshold: float = 0.10  # val - train loss above this reads as over-fitting
    batch_size: int = Field(32, ge=1)
    # Results below the confidence at which validation predictions are right this often are
    # flagged "uncertain" (the threshold is chosen on the validation split, after temperature scaling).
    confident_accuracy: float = Field(0.99, gt=0, le=1)
    # The grades below "sure", chosen on validation too (`evaluation.metrics.doubt_grades`): "likely" answers (a
    # clear lead over the second class) are right at least this often; "one of two" pairs hold the true class at
    # least `pair_coverage` of the time; below, "none". (0.9 for likely left no such band on the bundled model:
    # below "sure" its answers are right 75-84 % of the time whatever their confidence.)
    likely_accuracy: float = Field(0.8, gt=0, le=1)
    pair_coverage: float = Field(0.9, gt=0, le=1)
    # How sure evaluation must be that each grade keeps its aim above (the sure threshold's included) on photos it
    # did not choose on: 0.5 takes the observed rate at face value, which on the refit's 1,521 validation photos
    # gave "likely" answers right 73 % of the time on test (`benchmarks/grade_rules.py` measures the choice).
    grade_confidence: float = Field(0.9, ge=0.5, lt=1)
    # Test-time augmentation: predict each image and its left-right mirror and average the probabilities
    # (the seed trains with random flips). Off in the seed; it doubles the cost of a prediction. Evaluation,
    # the temperature, the model card and every prediction from the packaged model follow this setting.
    flip_tta: bool = False
    # The training split is scored on a seeded sample of this many images (0: all of them). Its figures only feed
    # the seed's gap analysis, and all 9,115 are 60 % of the images behind evaluation's 27.5 min here.
    train_sample: int = Field(3000, ge=0)
    # "Not household waste Pilah knows" (`inference.open_set`): the deep k-nearest-neighbour distance of each photo's
    # features at this layer (pooled over the image) to a bank of training photos; the head's pooled features beat
    # the backbone's ImageNet-only layers, the softmax and Mahalanobis distance in benchmarks/open_set.py.
    # "" turns the open-set score off.
    open_set_layer: str = "avg_pool"
    open_set_k: int = Field(2, ge=1)  # the k-th nearest neighbour
    open_set_bank_per_class: int = Field(100, ge=1)  # training photos per class in the bank (float16, shipped)
    open_set_false_refusals: float = Field(0.01, gt=0, lt=1)  # at most this share of validation photos refused
    # At most this share of validation photos is "less typical": their answers are at most "one of two", never sure
    # or likely (a softmax is most confidently wrong far from its training data).
    open_set_atypical: float = Field(0.1, gt=0, lt=1)


class Config(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @property
    def training_seed(self) -> int:
        return self.data.seed if self.train.seed is None else self.train.seed

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        from pilah.files import write_text

        write_text(Path(path), self.to_yaml())

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigError(_explain(error)) from None

    @classmethod
    def load(cls, path: str | Path) -> Config:
        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
        try:
            return cls.from_dict(values)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None

    def override(self, assignments: list[str]) -> Config:
        """Apply `section.key=value` strings (values parsed as YAML) and return a new config."""
        values = self.to_dict()
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep:
                raise ConfigError(f"expected section.key=value, got {assignment!r}")
            *parents, leaf = key.strip().split(".")
            node = values
            for depth, part in enumerate(parents):
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"unknown config section {'.'.join(parents[: depth + 1])!r}{_hint(part, node)}")
                node = node[part]
            if leaf not in node:
                raise ConfigError(f"unknown config key {key.strip()!r}{_hint(leaf, node)}")
            node[leaf] = yaml.safe_load(raw)
        return Config.from_dict(values)


def _hint(name: str, known: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(map(str, known))}"


def _explain(error: ValidationError) -> str:
    """Pydantic's errors as one line each, with the key as `section.key` and a hint for misspellings."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            section = _section_fields(item["loc"][:-1])
            lines.append(f"unknown config key {key!r}{_hint(str(item['loc'][-1]), section)}")
        elif item["type"] == "literal_error":
            choices = item["ctx"]["expected"]
            options = [c.strip().strip("'") for c in choices.replace(" or ", ", ").split(", ")]
            close = difflib.get_close_matches(str(item["input"]), options, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(f"{key}: {item['input']!r} is not one of {choices}{hint}")
        else:
            lines.append(f"{key}: {item['msg']}, got {item['input']!r}")
    return "; ".join(lines)


def _section_fields(location: tuple) -> dict[str, Any]:
    """The fields of the section at `location` (as a dict of names), for hints."""
    model: type[BaseModel] = Config
    for part in location:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return {}
        model = annotation
    return dict.fromkeys(model.model_fields)
