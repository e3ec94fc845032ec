"""Say what a photo really shows: the one route that writes to disk, behind the guards of `guards.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from pilah.data.corrections import NONE_CLASS
from pilah.serving.errors import ApiError
from pilah.serving.limits import read_upload
from pilah.serving.schemas import FEEDBACK_ERRORS, FeedbackBody
from pilah.serving.service import Service, check_advice, image_error, service_of

router = APIRouter(tags=["feedback"])


@router.post("/v1/feedback", response_model=FeedbackBody, status_code=201, responses=FEEDBACK_ERRORS)
async def feedback(
    request: Request,
    service: Annotated[Service, Depends(service_of)],
    label: Annotated[str, Form(max_length=32, description="the right class, or `none` when it fits no class")],
    file: Annotated[UploadFile | None, File(description="the photo (or give prediction_id)")] = None,
    prediction_id: Annotated[
        str | None, Form(max_length=64, description="the `id` of a recent /v1/predict answer")
    ] = None,
    region: Annotated[
        str | None, Form(max_length=12, description="a region code (GET /v1/regions), kept with the record")
    ] = None,
    language: Annotated[str | None, Form(max_length=2, description="id or en, kept with the record")] = None,
):
    """Say what a photo really shows. With `pilah serve --corrections DIR`, the photo (re-encoded as JPEG, its
    metadata dropped) goes to `DIR/<class>/<sha1>.jpg` and a record to `DIR/corrections.jsonl`, for review
    (`pilah data corrections review DIR`) before training; otherwise 404 `feedback_disabled`. Beyond loopback it
    needs `Authorization: Bearer <token>`; form posts from other sites' pages are refused; each client has a rate."""
    store = service.require_store(request)
    check_advice(region, language or "en")  # a known region and language, or none: every field is bounded
    if (file is None) == (prediction_id is None):
        raise ApiError("send either the photo (file) or a prediction_id, not both", "invalid_request", 422)
    if label not in (*store.classes, NONE_CLASS):
        raise ApiError(f"label must be one of {store.classes} or {NONE_CLASS!r}", "unknown_label", 422)
    if file is not None:
        photo = await read_upload(file, service.config.max_upload_bytes)
        (prediction,) = await service.predict([(file.filename, photo)])
        if prediction.error_code:
            raise image_error(prediction)
    else:
        photo, prediction = await service.recall(prediction_id)
    return await service.feedback(store, photo, prediction, label, region, language)
