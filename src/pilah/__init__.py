"""Pilah: sort your waste. A 12-class household-waste classifier with a CLI, an app and an API."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pilah.inference.predictor import Predictor

__all__ = ["Predictor", "__version__"]


def __getattr__(name: str):
    # Predictor pulls in Keras and TensorFlow; import them only when it is asked for.
    if name == "Predictor":
        from pilah.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'pilah' has no attribute {name!r}")
