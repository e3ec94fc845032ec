"""REST API: `pilah serve` runs this FastAPI service (uvicorn) for sorting machines, bots and other apps.

Every error is JSON `{"code": ..., "message": ...}` with a stable code. Uploads are recognised by their
bytes (never by name or declared type) and bounded in size (`limits.py`). One inference worker batches
whatever requests are waiting into one model call (`batching.py`). When the queue is full the service answers
503 with `Retry-After` instead of piling up memory.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pilah import __version__, guidance
from pilah.data.corrections import NONE_CLASS, Correction, CorrectionStore
from pilah.errors import PilahError, image_http_status
from pilah.inference.predictor import Prediction, Predictor
from pilah.inference.results import names_no_class
from pilah.serving.batching import Batcher
from pilah.serving.limits import ApiError, BodyLimit, error_response, read_upload
from pilah.serving.schemas import (
    ERRORS,
    FEEDBACK_ERRORS,
    BatchBody,
    BatchItem,
    ClassProbability,
    ErrorBody,
    FeedbackBody,
    Health,
    ModelRef,
    PredictionBody,
    Region,
    SelfCheck,
)
from pilah.serving.settings import MULTIPART_OVERHEAD, ServiceConfig

Photo = Annotated[UploadFile, File(description="one photo (JPEG, PNG, WebP, ...); its bytes decide the format")]
Photos = Annotated[list[UploadFile], File(description="photos, at most the batch limit (32 by default)")]
RegionQuery = Annotated[
    str | None, Query(description="add disposal advice from this region's guidance pack (GET /v1/regions)")
]
LanguageQuery = Annotated[str, Query(description="the advice's language: id or en")]


class RecentPredictions:
    """The last predictions with their photos, so that feedback can quote an id instead of sending the photo
    again; bounded by count and by bytes (the oldest go first). Used from the event loop only."""

    def __init__(self, count: int, max_bytes: int) -> None:
        self.count, self.max_bytes = count, max_bytes
        self.items: OrderedDict[str, tuple[bytes, Prediction]] = OrderedDict()
        self.bytes = 0

    def add(self, photo: bytes, prediction: Prediction) -> str:
        key = uuid.uuid4().hex
        self.items[key] = (photo, prediction)
        self.bytes += len(photo)
        while self.items and (len(self.items) > self.count or self.bytes > self.max_bytes):
            old, _ = self.items.popitem(last=False)
            self.bytes -= len(old)
        return key

    def get(self, key: str) -> tuple[bytes, Prediction]:
        if key not in self.items:
            raise ApiError(
                404,
                "unknown_prediction",
                f"no recent prediction {key!r} (the server keeps the last {self.count}); send the photo instead",
            )
        return self.items[key]


class Service:
    """The loaded model and the admission control around it."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self.batcher: Batcher | None = None
        self.admitted = 0  # requests running or waiting; guarded by the event loop (one thread)
        self.store: CorrectionStore | None = None
        self.recent = RecentPredictions(config.recent_predictions, int(config.recent_megabytes * 1024 * 1024))

    def load(self) -> None:
        try:
            predictor = Predictor(self.config.model, max_pixels=self.config.max_pixels)
            self.batcher = Batcher(predictor, self.config.max_inference_batch, self.config.top_k)
            if self.config.corrections:
                self.store = CorrectionStore(
                    self.config.corrections,
                    predictor.classes,
                    self.config.max_corrections,
                    self.config.max_upload_bytes,
                )
            self.predictor = predictor
        except Exception as error:  # reported by /healthz and every request, not a crash
            self.load_error = str(error) if isinstance(error, PilahError) else f"{type(error).__name__}: {error}"

    def require_ready(self) -> Predictor:
        """The loaded predictor, or 503 `not_ready` (still loading, or it could not load: the message says why)."""
        if self.predictor is None:
            raise ApiError(503, "not_ready", self.load_error or "the model is still loading", {"Retry-After": "5"})
        return self.predictor

    def health(self) -> Health:
        """A loaded service's health: the runtime that answers and its self-check on this processor."""
        check = SelfCheck(**self.predictor.check.to_dict())
        return Health(status="ok", ready=True, version=__version__, runtime=self.predictor.runtime, self_check=check)

    @property
    def model_ref(self) -> ModelRef:
        name = self.predictor.metadata.get("name", self.predictor.model_path.stem) if self.predictor else "?"
        version = self.predictor.metadata.get("pilah_version", __version__) if self.predictor else "?"
        return ModelRef(name=name, version=version)

    async def predict(self, files: list[tuple[str | None, bytes]]) -> list[Prediction]:
        self.require_ready()
        if self.admitted > self.config.queue:
            raise ApiError(503, "overloaded", "too many requests in the queue; retry shortly", {"Retry-After": "1"})
        self.admitted += 1
        try:
            with anyio.fail_after(self.config.timeout_s):
                return await asyncio.wrap_future(self.batcher.submit([data for _, data in files]))
        except TimeoutError as error:
            raise ApiError(504, "timeout", f"no result within {self.config.timeout_s:g} s") from error
        finally:
            self.admitted -= 1

    def body(
        self, filename: str | None, p: Prediction, photo: bytes, region: str | None, language: str
    ) -> PredictionBody:
        """The answer for one photo; kept for feedback by id when corrections are on."""
        no_class = names_no_class(p)
        return PredictionBody(
            id=self.recent.add(photo, p) if self.store else None,
            filename=filename,
            label=p.label or "",
            confidence=p.confidence,
            uncertain=p.uncertain,
            grade=p.grade,
            novelty=p.novelty,
            top_k=[ClassProbability(label=k, probability=v) for k, v in p.top_k],
            probabilities=p.probabilities,
            latency_ms=p.latency_ms,
            model=self.model_ref,
            advice=guidance.advice(p.label, region, language) if region and not no_class else None,
            when_unsure=guidance.when_unsure(region, language) if region and no_class else None,
        )

    def require_store(self) -> CorrectionStore:
        """The corrections folder: 404 `feedback_disabled` without `--corrections`, 503 while the model loads."""
        if not self.config.corrections:
            raise ApiError(404, "feedback_disabled", "this server keeps no corrections (pilah serve --corrections DIR)")
        self.require_ready()
        return self.store

    async def feedback(
        self, photo: bytes, prediction: Prediction, chosen: str, region: str | None, language: str | None
    ) -> FeedbackBody:
        correction = Correction(
            predicted=prediction.label or "",
            confidence=prediction.confidence,
            chosen=chosen,
            model_name=self.model_ref.name,
            model_version=self.model_ref.version,
            language=language,
            region=region,
            channel="api",
        )
        record = await anyio.to_thread.run_sync(self.require_store().add, photo, correction)
        return FeedbackBody(**{key: record[key] for key in FeedbackBody.model_fields})


def image_error(p: Prediction) -> ApiError:
    code = p.error_code or "corrupt"
    return ApiError(image_http_status(code), code, p.error or code)


def check_advice(region: str | None, language: str) -> None:
    """422 for a region without a pack or a language Pilah does not speak, before any work is done."""
    if region is not None:
        guidance.pack(region)  # GuidanceError `unknown_region`, a 422
    if language not in guidance.LANGUAGES:
        raise ApiError(422, "unknown_language", f"language must be one of {list(guidance.LANGUAGES)}")


def create_app(config: ServiceConfig | None = None, load_in_background: bool = True) -> FastAPI:
    config = config or ServiceConfig()
    service = Service(config)

    async def lifespan(app: FastAPI):
        if load_in_background:
            threading.Thread(target=service.load, name="model-loader", daemon=True).start()
        else:
            service.load()
        yield

    app = FastAPI(
        title="Pilah API",
        version=__version__,
        description="Classify photos of household waste into 12 classes (Xception, Keras 3).",
        lifespan=lifespan,
    )

    def limit_for(path: str) -> int:  # /v1/feedback carries one photo, as /v1/predict
        files = config.max_batch if path.endswith("/batch") else 1
        return files * config.max_upload_bytes + MULTIPART_OVERHEAD

    app.add_middleware(BodyLimit, limit_for=limit_for)

    @app.exception_handler(PilahError)
    async def api_error(request: Request, error: PilahError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        missing = any(e.get("type") == "missing" for e in error.errors())
        code = "missing_file" if missing else "invalid_request"
        fields = ", ".join(".".join(map(str, e.get("loc", ()))) for e in error.errors())
        return error_response(ApiError(422, code, f"invalid or missing form field(s): {fields}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(ApiError(error.status_code, code, str(error.detail)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return error_response(ApiError(500, "internal", f"unexpected {type(error).__name__}"))

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness: always 200 while the process runs; `ready` turns true once the model is loaded."""
        if service.predictor is not None:
            return service.health()
        return Health(status="error" if service.load_error else "ok", ready=False, version=__version__)

    @app.get("/readyz", response_model=Health, responses={503: ERRORS[503]}, tags=["service"])
    async def readyz():
        """Readiness: 200 once the model is loaded and its runtime passed the self-check, 503 before (or never,
        when no runtime gives the model's answers on this processor)."""
        service.require_ready()
        return service.health()

    @app.get("/v1/model", responses={503: ERRORS[503]}, tags=["model"])
    async def model_card() -> dict[str, Any]:
        """The model card (classes, input, calibration, data, training, metrics, reference answers), the runtime
        that serves it and the result of its self-check on this processor."""
        predictor = service.require_ready()
        return {
            "name": service.model_ref.name,
            "version": service.model_ref.version,
            **predictor.metadata,
            "runtime": predictor.runtime,
            "self_check_result": predictor.check.to_dict(),
        }

    @app.get("/v1/regions", response_model=list[Region], tags=["model"])
    async def list_regions() -> list[Region]:
        """The regions whose disposal advice this server knows (`?region=` on the predict routes)."""
        packs = [guidance.pack(region) for region in guidance.regions()]
        return [Region(region=p.region, name=p.name, languages=p.languages) for p in packs]

    @app.post("/v1/predict", response_model=PredictionBody, responses=ERRORS, tags=["predict"])
    async def predict(request: Request, file: Photo, region: RegionQuery = None, lang: LanguageQuery = "en"):
        """Classify one photo; with `?region=`, add how to dispose of it there."""
        check_advice(region, lang)
        if len((await request.form()).getlist("file")) > 1:  # the form is parsed once: this reads it again for free
            raise ApiError(422, "too_many_files", "one photo per request here; several go to /v1/predict/batch")
        data = await read_upload(file, config.max_upload_bytes)
        (prediction,) = await service.predict([(file.filename, data)])
        if prediction.error_code:
            raise image_error(prediction)
        return service.body(file.filename, prediction, data, region, lang)

    @app.post("/v1/predict/batch", response_model=BatchBody, responses=ERRORS, tags=["predict"])
    async def predict_batch(files: Photos, region: RegionQuery = None, lang: LanguageQuery = "en"):
        """Classify up to `max_batch` photos; a bad file gets its own error and never fails the batch."""
        check_advice(region, lang)
        if len(files) > config.max_batch:
            raise ApiError(422, "too_many_files", f"{len(files)} files; at most {config.max_batch} per batch")
        items: list[BatchItem] = []
        good: list[tuple[int, str | None, bytes]] = []
        for upload in files:
            try:
                good.append((len(items), upload.filename, await read_upload(upload, config.max_upload_bytes)))
                items.append(BatchItem(filename=upload.filename))
            except ApiError as error:
                failed = ErrorBody(code=error.code, message=error.message)
                items.append(BatchItem(filename=upload.filename, error=failed))
        predictions = await service.predict([(name, data) for _, name, data in good]) if good else []
        for (index, name, data), prediction in zip(good, predictions, strict=True):
            if prediction.error_code:
                error = image_error(prediction)
                items[index].error = ErrorBody(code=error.code, message=error.message)
            else:
                items[index].result = service.body(name, prediction, data, region, lang)
        return BatchBody(results=items, model=service.model_ref)

    @app.post(
        "/v1/feedback", response_model=FeedbackBody, status_code=201, responses=FEEDBACK_ERRORS, tags=["feedback"]
    )
    async def feedback(
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
        metadata dropped) goes to `DIR/<class>/<sha1>.jpg` and a record to `DIR/corrections.jsonl`, ready to
        train on (`pilah train --data DATA --data DIR`); otherwise 404 `feedback_disabled`."""
        store = service.require_store()
        check_advice(region, language or "en")  # a known region and language, or none: every field is bounded
        if (file is None) == (prediction_id is None):
            raise ApiError(422, "invalid_request", "send either the photo (file) or a prediction_id, not both")
        if label not in (*store.classes, NONE_CLASS):
            raise ApiError(422, "unknown_label", f"label must be one of {store.classes} or {NONE_CLASS!r}")
        if file is not None:
            photo = await read_upload(file, config.max_upload_bytes)
            (prediction,) = await service.predict([(file.filename, photo)])
            if prediction.error_code:
                raise image_error(prediction)
        else:
            photo, prediction = service.recent.get(prediction_id)
        return await service.feedback(photo, prediction, label, region, language)

    return app


def serve(config: ServiceConfig, host: str, port: int) -> None:
    import uvicorn

    print(f"Pilah API on http://{host}:{port}  (docs at /docs; Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
