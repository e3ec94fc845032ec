"""Classify one photo, or a batch in which a bad file gets its own error and never fails the rest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile

from pilah.errors import PilahError
from pilah.serving.errors import ApiError
from pilah.serving.limits import read_upload
from pilah.serving.schemas import ERRORS, BatchBody, BatchItem, ErrorBody, PredictionBody
from pilah.serving.service import Service, check_advice, image_error, service_of

router = APIRouter(tags=["predict"])
ServiceDep = Annotated[Service, Depends(service_of)]
Photo = Annotated[UploadFile, File(description="one photo (JPEG, PNG, WebP, ...); its bytes decide the format")]
Photos = Annotated[list[UploadFile], File(description="photos, at most the batch limit (32 by default)")]
RegionQuery = Annotated[
    str | None, Query(description="add disposal advice from this region's guidance pack (GET /v1/regions)")
]
LanguageQuery = Annotated[str, Query(description="the advice's language: id or en")]


@router.post("/v1/predict", response_model=PredictionBody, responses=ERRORS)
async def predict(
    request: Request, file: Photo, service: ServiceDep, region: RegionQuery = None, lang: LanguageQuery = "en"
):
    """Classify one photo; with `?region=`, add how to dispose of it there."""
    check_advice(region, lang)
    if len((await request.form()).getlist("file")) > 1:  # the form is parsed once: this reads it again for free
        raise ApiError("one photo per request here; several go to /v1/predict/batch", "too_many_files", 422)
    data = await read_upload(file, service.config.max_upload_bytes)
    (prediction,) = await service.predict([(file.filename, data)])
    if prediction.error_code:
        raise image_error(prediction)
    return await service.body(file.filename, prediction, data, region, lang)


@router.post("/v1/predict/batch", response_model=BatchBody, responses=ERRORS)
async def predict_batch(files: Photos, service: ServiceDep, region: RegionQuery = None, lang: LanguageQuery = "en"):
    """Classify up to `max_batch` photos; a bad file gets its own error and never fails the batch."""
    check_advice(region, lang)
    config = service.config
    if len(files) > config.max_batch:
        raise ApiError(f"{len(files)} files; at most {config.max_batch} per batch", "too_many_files", 422)
    items: list[BatchItem] = []
    good: list[tuple[int, str | None, bytes]] = []
    for upload in files:
        try:
            good.append((len(items), upload.filename, await read_upload(upload, config.max_upload_bytes)))
            items.append(BatchItem(filename=upload.filename))
        except PilahError as error:  # over the size limit: this file's own error
            items.append(BatchItem(filename=upload.filename, error=ErrorBody(code=error.code, message=error.message)))
    predictions = await service.predict([(name, data) for _, name, data in good]) if good else []
    for (index, name, data), prediction in zip(good, predictions, strict=True):
        if prediction.error_code:
            error = image_error(prediction)
            items[index].error = ErrorBody(code=error.code, message=error.message)
        else:
            items[index].result = await service.body(name, prediction, data, region, lang)
    return BatchBody(results=items, model=service.model_ref)
