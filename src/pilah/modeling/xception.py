"""The seed's model: frozen ImageNet Xception (last 20 layers trainable) under a small dense head.

Augmentation and Xception's input scaling are layers of the model itself, so the saved `.keras`
file takes raw RGB pixels (0-255) and loads with plain `keras.saving.load_model` (built-in layers only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from pilah.config import AugmentConfig, ModelConfig
from pilah.errors import UsageError, WeightsError


@dataclass(frozen=True)
class Backbone:
    """A registry entry: how to build a base network and how it wants its pixels scaled."""

    build: Callable[..., keras.Model]
    input_scale: float  # pixels * scale + offset
    input_offset: float


BACKBONES: dict[str, Backbone] = {
    # Xception was trained on pixels scaled to [-1, 1] (keras.applications.xception.preprocess_input).
    "xception": Backbone(keras.applications.Xception, 1 / 127.5, -1.0),
}

NONE_WEIGHTS = ("none", "", "random")
AUGMENTATION = "augmentation"  # the name of the augmentation block, which inference leaves out
PREPROCESS = "preprocess"  # the name of the layer that scales pixels as the backbone expects


def build_augmentation(config: AugmentConfig) -> keras.Sequential:
    """Keras layers equivalent to the seed's ImageDataGenerator; active only while training."""
    steps: list[layers.Layer] = []
    if config.horizontal_flip:
        steps.append(layers.RandomFlip("horizontal"))
    if config.rotation_degrees:
        steps.append(layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode=config.fill_mode))
    if config.width_shift or config.height_shift:
        steps.append(layers.RandomTranslation(config.height_shift, config.width_shift, fill_mode=config.fill_mode))
    if config.zoom:
        steps.append(layers.RandomZoom(config.zoom, fill_mode=config.fill_mode))
    if config.brightness:
        steps.append(layers.RandomBrightness(config.brightness, value_range=(0, 255)))
    if config.contrast:
        # a pair, not a number: Keras 3 reads RandomContrast(0.2) as factors in [1.0, 1.2], contrast up only
        steps.append(layers.RandomContrast((config.contrast, config.contrast), value_range=(0, 255)))
    return keras.Sequential(steps, name=AUGMENTATION)


def build_backbone(config: ModelConfig, image_size: int) -> keras.Model:
    if config.backbone not in BACKBONES:
        raise UsageError(f"unknown backbone {config.backbone!r}; known: {', '.join(BACKBONES)}")
    weights: str | None = config.weights
    if weights.lower() in NONE_WEIGHTS:
        weights = None
    elif weights != "imagenet" and not Path(weights).is_file():
        raise WeightsError(f"weights file not found: {weights}")
    try:
        base = BACKBONES[config.backbone].build(
            include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
        )
    except Exception as error:  # Keras raises plain Exception types for failed downloads
        if weights == "imagenet":
            raise WeightsError(
                "could not download the ImageNet weights; without internet pass a local file, "
                "e.g. --weights path/to/xception_imagenet_notop.weights.h5"
            ) from error
        raise
    freeze(base, config.fine_tune_at)
    return base


def freeze(base: keras.Model, fine_tune_at: int) -> None:
    """Train only `base.layers[fine_tune_at:]` (the seed: the last 20 layers)."""
    base.trainable = True
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False


def build_head(features: keras.KerasTensor, config: ModelConfig, num_classes: int) -> keras.KerasTensor:
    x = layers.GlobalAveragePooling2D(name="avg_pool")(features)
    for i, (units, rate) in enumerate(zip(config.head_units, config.head_dropout, strict=True), 1):
        x = layers.Dense(
            units,
            activation="relu",
            kernel_regularizer=keras.regularizers.L2(config.l2),
            name=f"head_dense_{i}",
        )(x)
        x = layers.BatchNormalization(name=f"head_bn_{i}")(x)
        x = layers.Dropout(rate, name=f"head_dropout_{i}")(x)
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def build_model(config: ModelConfig, num_classes: int, image_size: int) -> keras.Model:
    base = build_backbone(config, image_size)
    backbone = BACKBONES[config.backbone]
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = build_augmentation(config.augment)(inputs)
    x = layers.Rescaling(backbone.input_scale, backbone.input_offset, name=PREPROCESS)(x)
    outputs = build_head(base(x), config, num_classes)
    return keras.Model(inputs, outputs, name=f"pilah_{config.backbone}")
