"""The one typed config: the seed's defaults, checked values, hints for misspellings, `pilah config`."""

from pathlib import Path

import pytest
import yaml

from conftest import REPO, pilah
from pilah.config import Config
from pilah.errors import ConfigError


def test_defaults_are_the_seed_values():
    config = Config()
    assert config.data.image_size == 224
    assert (config.data.train_fraction, config.data.val_fraction, config.data.test_fraction) == (
        0.6,
        0.2,
        0.2,
    )
    assert config.model.backbone == "xception"
    assert config.model.fine_tune_at == -20
    assert config.model.head_units == (256, 128)
    assert config.model.head_dropout == (0.6, 0.5)
    assert config.model.l2 == 0.01
    augment = config.model.augment
    assert (augment.rotation_degrees, augment.width_shift, augment.height_shift, augment.zoom) == (
        20,
        0.1,
        0.1,
        0.1,
    )
    assert augment.horizontal_flip
    train = config.train
    assert (train.learning_rate, train.batch_size, train.epochs) == (1e-5, 32, 50)
    assert train.early_stopping_patience == 10
    assert train.checkpoint_monitor == "val_accuracy"
    assert config.eval.ece_bins == 15


def test_save_and_load_round_trip(tmp_path: Path):
    config = Config().override(["train.learning_rate=1e-4", "model.head_units=[64, 32]", "data.root=/x"])
    config.save(tmp_path / "config.yaml")
    loaded = Config.load(tmp_path / "config.yaml")
    assert loaded == config
    assert loaded.train.learning_rate == pytest.approx(1e-4)
    assert loaded.model.head_units == (64, 32)


def test_override_parses_types():
    config = Config().override(["train.epochs=3", "model.augment.horizontal_flip=false", "model.weights=none"])
    assert config.train.epochs == 3
    assert config.model.augment.horizontal_flip is False
    assert config.model.weights == "none"


@pytest.mark.parametrize(
    "assignment",
    ["train.epoch=3", "nope.key=1", "train.epochs=three", "train.epochs", "model.augment.horizontal_flip=2"],
)
def test_bad_overrides_are_refused(assignment: str):
    with pytest.raises(ConfigError):
        Config().override([assignment])


def test_unknown_key_in_file_is_refused(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("train:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.learning_rat"):
        Config.load(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ("train:\n  learning_rat: 0.1\n", "did you mean 'learning_rate'?"),
        ("train:\n  mode: cahced\n", "train.mode: 'cahced' is not one of 'fit' or 'cached'; did you mean 'cached'?"),
        ("trian:\n  epochs: 3\n", "did you mean 'train'?"),
        ("model:\n  augment:\n    fill_mode: neares\n", "did you mean 'nearest'?"),
        ("data:\n  val_fraction: 1.5\n", "data.val_fraction: Input should be less than or equal to 1"),
    ],
)
def test_a_config_file_is_checked_when_it_loads_with_a_hint(tmp_path: Path, where: str, hint: str):
    (tmp_path / "bad.yaml").write_text(where)
    with pytest.raises(ConfigError) as caught:
        Config.load(tmp_path / "bad.yaml")
    assert hint in str(caught.value) and str(tmp_path / "bad.yaml") in str(caught.value)


def test_overrides_get_the_same_hints():
    with pytest.raises(ConfigError, match="did you mean 'schedule'"):
        Config().override(["train.shedule=cosine"])
    with pytest.raises(ConfigError, match="did you mean 'cosine'"):
        Config().override(["train.schedule=cosin"])


def test_pilah_config_prints_the_defaults_and_what_a_file_and_sets_make_of_them(tmp_path: Path):
    printed = pilah("config").stdout
    assert Config.from_dict(yaml.safe_load(printed)) == Config()
    assert "learning_rate: 1.0e-05" in printed and "fine_tune_at: -20" in printed
    (tmp_path / "mine.yaml").write_text("train:\n  mode: cached\n")
    mine = yaml.safe_load(pilah("config", "--config", tmp_path / "mine.yaml", "--set", "train.epochs=3").stdout)
    assert (mine["train"]["mode"], mine["train"]["epochs"]) == ("cached", 3)
    refused = pilah("config", "--set", "train.epoch=3", check=False)
    assert refused.returncode == 2 and "did you mean 'epochs'?" in refused.stderr


@pytest.mark.parametrize("name", ["cpu.yaml", "gpu.yaml"])
def test_the_shipped_recipes_load(name):
    config = Config.load(REPO / "configs" / name)
    assert config.train.epochs >= 5 and config.eval.flip_tta and config.data == Config().data
