"""Files that ship inside the package: texts, guidance and the example photos."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def examples_dir() -> Path:
    """One photo per class from the data set's test split; the app offers them, the self-check runs them."""
    return Path(str(resources.files("pilah") / "resources" / "examples"))


def models_dir() -> Path:
    """The int8 ONNX model that ships inside the package, with its model card (the `.keras` model it was
    exported from is too large for a package: it lives in `models/` of the repository)."""
    return Path(str(resources.files("pilah") / "resources" / "models"))
