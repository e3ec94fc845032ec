"""Files that ship inside the package: texts, guidance and the example photos."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def examples_dir() -> Path:
    """One photo per class from the data set's test split; the app offers them, the self-check runs them."""
    return Path(str(resources.files("pilah") / "resources" / "examples"))


def example_photos() -> list[Path]:
    """The example photos, in the order the app and the browser page offer them."""
    return sorted(examples_dir().glob("*.jpg"))


@cache
def read_yaml(name: str) -> dict[str, Any]:
    """A YAML file that ships in this folder (`texts.yaml`), read once per process."""
    return yaml.safe_load(resources.files("pilah.resources").joinpath(name).read_text(encoding="utf-8"))


def models_dir() -> Path:
    """The int8 ONNX model that ships inside the package, with its model card (the `.keras` model it was
    exported from is too large for a package: it lives in `models/` of the repository)."""
    return Path(str(resources.files("pilah") / "resources" / "models"))
