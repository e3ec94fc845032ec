"""The model card as the code that serves a model reads it: one typed object for inference, the app and the API.

A packaged model carries `<stem>.json` (an export `<file>.json`); a run's model has `labels.json` and, once
evaluated, `metrics.json` beside it. Fields the serving code reads are typed here; the rest of the card (data,
training, metrics, citations) travels along untouched for whoever shows it (`GET /v1/model`, the app's "About").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pilah.errors import ModelNotFoundError
from pilah.files import read_json
from pilah.runs import RunPaths

CALIBRATION_KEYS = ("temperature", "uncertain_below", "grades", "flip_tta", "open_set")  # what metrics.json adds


class Grades(BaseModel):
    model_config = ConfigDict(extra="allow")

    likely_margin: float = 1.0  # older cards: below "sure" is "one of two", never "none"
    two_from: float = 0.0


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    classes: list[str]
    name: str | None = None
    pilah_version: str = "?"
    temperature: float = 1.0
    uncertain_below: float = 0.0
    grades: Grades = Field(default_factory=Grades)
    flip_tta: bool = False  # as the model was evaluated and calibrated
    open_set: dict[str, Any] | None = None  # `inference.open_set.OpenSet.from_card` reads it
    self_check: dict[str, Any] | None = None  # the reference answers (`inference.selfcheck`)
    export: dict[str, Any] = Field(default_factory=dict)  # for an export: its format and the `.keras` source
    metrics: dict[str, Any] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def embedding_layer(self) -> str | None:
        """The layer whose pooled features the open-set score compares, when the card has one."""
        return (self.open_set or {}).get("layer")

    @property
    def source(self) -> str | None:
        """The `.keras` file an export was made from."""
        return self.export.get("source")

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def card_files(model_path: Path) -> tuple[Path, Path]:
    """Where a model's card may be: `<file>.json` (an export's) or `<stem>.json`."""
    return model_path.with_name(model_path.name + ".json"), model_path.with_suffix(".json")


def model_metadata(model_path: Path) -> dict[str, Any]:
    """The card as written (a dict, for the tools that extend it and write it again: export, packaging)."""
    for card in card_files(model_path):
        if card.is_file():
            return read_json(card)
    run = RunPaths(model_path.parent)
    if run.labels.is_file():
        metadata: dict[str, Any] = {"classes": read_json(run.labels)}
        if run.metrics.is_file():
            scores = read_json(run.metrics)
            metadata |= {key: scores[key] for key in CALIBRATION_KEYS if scores.get(key) is not None}
        return metadata
    raise ModelNotFoundError(f"{model_path}: no model card ({model_path.stem}.json) or labels.json beside it")


def read_card(model_path: Path) -> ModelCard:
    return ModelCard.model_validate(model_metadata(model_path))
