"""Grad-CAM: which part of the photo drove the answer (Selvaraju et al., 2017).

The model splits at its backbone's output (the last convolutional feature map, 7x7 at 224 px): the
class score's gradient with respect to that map, averaged over space, weighs its channels.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from matplotlib import colormaps
from PIL import Image

from pilah.modeling.anatomy import features_and_head


class GradCam:
    def __init__(self, model: keras.Model) -> None:
        self.features, self.head = features_and_head(model)

    @classmethod
    def from_file(cls, keras_path: Path) -> GradCam:
        """For an exported model, which has no gradients: the `.keras` file it came from (safe mode)."""
        return cls(keras.saving.load_model(keras_path, safe_mode=True))

    def heatmap(self, image: np.ndarray, class_index: int) -> np.ndarray:
        """Map in [0, 1] at the feature map's resolution for one RGB uint8 image."""
        features = np.asarray(self.features.predict_on_batch(image[None].astype(np.float32)))

        def score(f):
            return self.head(f, training=False)[0, class_index]

        grads = _gradient(score, features)
        weights = grads.mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * features).sum(axis=-1)[0], 0)
        return cam / cam.max() if cam.max() > 0 else cam

    def overlay(self, image: np.ndarray, class_index: int, alpha: float = 0.45) -> Image.Image:
        """The photo with the heatmap on top, red where the model looked hardest."""
        cam = Image.fromarray((self.heatmap(image, class_index) * 255).astype(np.uint8))
        cam = np.asarray(cam.resize(image.shape[1::-1], Image.Resampling.BILINEAR)) / 255.0
        colored = colormaps["jet"](cam)[..., :3] * 255
        blended = (1 - alpha) * image.astype(np.float64) + alpha * colored
        return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def _gradient(score, features: np.ndarray) -> np.ndarray:
    """d score / d features with whichever backend Keras runs on."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(features)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = score(x)
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(score)(jax.numpy.asarray(features)))
    if backend == "torch":
        import torch

        x = torch.tensor(features, requires_grad=True)
        score(x).backward()
        return x.grad.detach().cpu().numpy()
    raise NotImplementedError(f"Grad-CAM needs gradients; no support for the {backend!r} backend")
