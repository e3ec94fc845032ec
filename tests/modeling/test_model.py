"""The seed's architecture, layer for layer, and a saved model that plain Keras loads."""

import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import IMAGENET_WEIGHTS, needs_shared
from pilah.config import ModelConfig
from pilah.errors import WeightsError
from pilah.modeling.xception import build_model


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_model(ModelConfig(weights="none"), num_classes=12, image_size=224)


def test_seed_architecture(model: keras.Model):
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 12)
    names = [layer.name for layer in model.layers]
    assert names == [
        "image", "augmentation", "preprocess", "xception", "avg_pool",
        "head_dense_1", "head_bn_1", "head_dropout_1",
        "head_dense_2", "head_bn_2", "head_dropout_2", "predictions",
    ]  # fmt: skip
    dense1, dense2, out = (model.get_layer(n) for n in ("head_dense_1", "head_dense_2", "predictions"))
    assert (dense1.units, dense2.units, out.units) == (256, 128, 12)
    assert dense1.activation.__name__ == dense2.activation.__name__ == "relu"
    assert out.activation.__name__ == "softmax"
    assert dense1.kernel_regularizer.l2 == pytest.approx(0.01)
    assert dense2.kernel_regularizer.l2 == pytest.approx(0.01)
    assert model.get_layer("head_dropout_1").rate == 0.6
    assert model.get_layer("head_dropout_2").rate == 0.5


def test_only_the_last_20_base_layers_train(model: keras.Model):
    base = model.get_layer("xception")
    assert len(base.layers) == 132
    flags = [layer.trainable for layer in base.layers]
    assert not any(flags[:-20]) and all(flags[-20:])
    assert base.layers[-20].name == "block12_sepconv3_act"
    head = [layer for layer in model.layers[4:] if layer.weights]
    assert all(layer.trainable for layer in head)


def test_preprocessing_and_augmentation_live_inside(model: keras.Model):
    scale = model.get_layer("preprocess")
    assert scale.scale == pytest.approx(1 / 127.5) and scale.offset == -1.0
    pixels = np.array([[[[0.0, 127.5, 255.0]]]])
    assert np.allclose(keras.ops.convert_to_numpy(scale(pixels)), [[[[-1.0, 0.0, 1.0]]]])
    augmentation = [type(layer).__name__ for layer in model.get_layer("augmentation").layers]
    assert augmentation == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom"]
    rotation = model.get_layer("augmentation").layers[1]
    assert rotation.factor == pytest.approx((-20 / 360, 20 / 360))
    image = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    assert np.allclose(model.predict_on_batch(image), model.predict_on_batch(image))  # inference: no augmentation


def test_saved_model_loads_with_plain_keras_in_a_fresh_process(model: keras.Model, tmp_path: Path):
    path = tmp_path / "model.keras"
    model.save(path)
    image = np.random.default_rng(1).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.save(tmp_path / "image.npy", image)
    expected = model.predict_on_batch(image)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        assert not any(name.startswith("pilah") for name in sys.modules), "pilah was imported"
        np.save({str(tmp_path / "out.npy")!r}, model.predict_on_batch(np.load({str(tmp_path / "image.npy")!r})))
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)


def test_missing_weights_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(WeightsError, match="not found"):
        build_model(ModelConfig(weights=str(tmp_path / "none.h5")), 12, 224)


@needs_shared(IMAGENET_WEIGHTS)
def test_offline_imagenet_weights_load(model: keras.Model):
    def first_kernel(m: keras.Model) -> np.ndarray:
        return keras.ops.convert_to_numpy(m.get_layer("xception").get_layer("block1_conv1").kernel)

    loaded = [build_model(ModelConfig(weights=str(IMAGENET_WEIGHTS)), 12, 224) for _ in range(2)]
    assert np.array_equal(first_kernel(loaded[0]), first_kernel(loaded[1]))  # the file's values, twice
    assert not np.allclose(first_kernel(loaded[0]), first_kernel(model))  # not a random initialisation


def test_photometric_jitter_is_added_to_the_augmentation_only_when_asked():
    config = ModelConfig(weights="none")
    config.augment.brightness, config.augment.contrast = 0.2, 0.3
    model = build_model(config, num_classes=12, image_size=96)
    layers = model.get_layer("augmentation").layers
    assert [type(layer).__name__ for layer in layers][-2:] == ["RandomBrightness", "RandomContrast"]
    assert layers[-2].factor == pytest.approx((-0.2, 0.2)) and list(layers[-2].value_range) == [0, 255]
    assert layers[-1].factor == pytest.approx((0.3, 0.3))  # contrast factors drawn from [0.7, 1.3]
    image = np.random.default_rng(0).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    assert np.allclose(model.predict_on_batch(image), model.predict_on_batch(image))  # inactive at inference
