"""The API's request and response bodies, as its OpenAPI schema documents them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from pilah.guidance import Advice, UnsureAdvice  # how to dispose of it where the user lives (`?region=`)


class ErrorBody(BaseModel):
    code: str
    message: str


class ClassProbability(BaseModel):
    label: str
    probability: float


class ModelRef(BaseModel):
    name: str
    version: str


class PredictionBody(BaseModel):
    id: str | None = None  # when the server keeps corrections: quote it in POST /v1/feedback instead of the photo
    filename: str | None
    label: str
    confidence: float
    uncertain: bool
    # "two": one of the top two; "none": no promise holds; "unfamiliar": not household waste Pilah knows. The last
    # two name no class (`label` is then only the most probable one).
    grade: Literal["sure", "likely", "two", "none", "unfamiliar"]
    novelty: float | None = None  # how unlike the training photos; "unfamiliar" above the model card's threshold
    top_k: list[ClassProbability]
    probabilities: dict[str, float]
    latency_ms: float
    model: ModelRef
    advice: Advice | None = None  # with ?region=, for a grade that names a class (or two: the first)
    when_unsure: UnsureAdvice | None = None  # with ?region=, for "none" and "unfamiliar": the region's safe default


class BatchItem(BaseModel):
    filename: str | None
    result: PredictionBody | None = None
    error: ErrorBody | None = None


class BatchBody(BaseModel):
    results: list[BatchItem]
    model: ModelRef


class FeedbackBody(BaseModel):
    """A correction as kept: the photo's place in the corrections folder and what was recorded."""

    path: str
    sha1: str
    predicted: str
    confidence: float
    chosen: str
    correct: bool
    time: str


class Region(BaseModel):
    region: str
    name: dict[str, str]
    languages: list[str]


class SelfCheck(BaseModel):
    """Whether the runtime gave the model's reference answers on this processor when it loaded."""

    runtime: str
    passed: bool | None  # null: the model card holds no reference answers
    photos: int
    max_difference: float
    tolerance: float
    novelty_difference: float | None = None  # null: the card has no open-set score to check
    changed: list[str]
    seconds: float
    note: str


class Health(BaseModel):
    status: str
    ready: bool
    version: str
    runtime: str | None = None  # what computes the answers, e.g. "onnxruntime 1.32.0, graph optimisation all, ..."
    self_check: SelfCheck | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        413: "body over the upload limit",
        415: "not an image, or a format this service cannot decode",
        422: "corrupt or refused image (pixel limit, size, aspect ratio), missing file, too many files, unknown class "
        "or region",
        503: "model not loaded yet, or the queue is full (see Retry-After)",
        504: "inference took longer than the request timeout",
    }.items()
}

FEEDBACK_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    404: {"model": ErrorBody, "description": "unknown (or forgotten) prediction id, or feedback is off on this server"},
    507: {"model": ErrorBody, "description": "the corrections folder is full"},
}
