"""REST API: `pilah serve` runs this FastAPI service (uvicorn) for sorting machines, bots and other apps.

Every error is JSON `{"code": ..., "message": ...}` with a stable code. Uploads are recognised by their
bytes (never by name or declared type) and bounded in size. One inference worker batches whatever requests
are waiting into one model call (dynamic batching: no added delay when idle; more throughput where
batches run faster per image than single images). When the queue is full the service answers 503 with
`Retry-After` instead of piling up memory.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from pilah import __version__
from pilah.images import DEFAULT_MAX_PIXELS
from pilah.predict import Prediction, Predictor

# ImageError reasons -> HTTP status: the bytes are no image we decode (415), or an image we refuse (422).
STATUS_OF_IMAGE_ERROR = {"not_an_image": 415, "unsupported": 415}
IMAGE_ERROR_STATUS = 422
Photo = Annotated[UploadFile, File(description="one photo (JPEG, PNG, WebP, ...); its bytes decide the format")]
Photos = Annotated[list[UploadFile], File(description="photos, at most the batch limit (32 by default)")]


@dataclass(frozen=True)
class ServiceConfig:
    model: str | None = None  # None: the bundled model
    max_upload_mb: float = 10.0  # per file; a batch may carry max_batch files of this size
    max_batch: int = 32
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_inference_batch: int = 32  # waiting requests' images run through the model together, up to this many
    queue: int = 64  # requests waiting beyond those running; more get 503
    timeout_s: float = 60.0  # a request waiting or running longer gets 504
    top_k: int = 3

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


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
    filename: str | None
    label: str
    confidence: float
    uncertain: bool
    top_k: list[ClassProbability]
    probabilities: dict[str, float]
    latency_ms: float
    model: ModelRef


class BatchItem(BaseModel):
    filename: str | None
    result: PredictionBody | None = None
    error: ErrorBody | None = None


class BatchBody(BaseModel):
    results: list[BatchItem]
    model: ModelRef


class SelfCheck(BaseModel):
    """Whether the runtime gave the model's reference answers on this processor when it loaded."""

    runtime: str
    passed: bool | None  # null: the model card holds no reference answers
    photos: int
    max_difference: float
    tolerance: float
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
        422: "corrupt or refused image (pixel limit, size, aspect ratio), missing file, too many files",
        503: "model not loaded yet, or the queue is full (see Retry-After)",
        504: "inference took longer than the request timeout",
    }.items()
}


class Batcher:
    """One worker thread that runs every waiting request's images through the model in one call."""

    def __init__(self, predictor: Predictor, max_batch: int, top_k: int) -> None:
        self.predictor, self.max_batch, self.top_k = predictor, max_batch, top_k
        self.jobs: queue.SimpleQueue[tuple[list[bytes], Future]] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="inference", daemon=True).start()

    def submit(self, blobs: list[bytes]) -> Future:
        future: Future = Future()
        self.jobs.put((blobs, future))
        return future

    def _work(self) -> None:
        while True:
            jobs = [self.jobs.get()]
            while sum(len(blobs) for blobs, _ in jobs) < self.max_batch:
                try:
                    jobs.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            live = [(blobs, future) for blobs, future in jobs if future.set_running_or_notify_cancel()]
            try:
                predictions = self.predictor.predict_batch([b for blobs, _ in live for b in blobs], top_k=self.top_k)
            except Exception as error:  # reported to each waiting request as a 500, the worker lives on
                for _, future in live:
                    future.set_exception(error)
                continue
            start = 0
            for blobs, future in live:
                future.set_result(predictions[start : start + len(blobs)])
                start += len(blobs)


class Service:
    """The loaded model and the admission control around it."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self.batcher: Batcher | None = None
        self.admitted = 0  # requests running or waiting; guarded by the event loop (one thread)

    def load(self) -> None:
        try:
            predictor = Predictor(self.config.model, max_pixels=self.config.max_pixels)
            self.batcher = Batcher(predictor, self.config.max_inference_batch, self.config.top_k)
            self.predictor = predictor
        except Exception as error:  # reported by /healthz and every request, not a crash
            self.load_error = f"{type(error).__name__}: {error}"

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
        if self.predictor is None:
            message = self.load_error or "the model is still loading"
            raise ApiError(503, "not_ready", message, {"Retry-After": "5"})
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

    def body(self, filename: str | None, p: Prediction) -> PredictionBody:
        return PredictionBody(
            filename=filename,
            label=p.label or "",
            confidence=p.confidence,
            uncertain=p.uncertain,
            top_k=[ClassProbability(label=k, probability=v) for k, v in p.top_k],
            probabilities=p.probabilities,
            latency_ms=p.latency_ms,
            model=self.model_ref,
        )


def image_error(p: Prediction) -> ApiError:
    code = p.error_code or "corrupt"
    message = (p.error or code).split(": ", 1)[-1]
    return ApiError(STATUS_OF_IMAGE_ERROR.get(code, IMAGE_ERROR_STATUS), code, message)


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large_upload", f"{upload.filename or 'the file'} is over the {limit:,}-byte limit")
    return data


class BodyLimit:
    """Refuse request bodies over the limit (413) before they are parsed or kept in memory."""

    def __init__(self, app, limit_for) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _error_response(_body_too_large(limit))(scope, receive, send)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise _body_too_large(limit)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except ApiError as error:  # a streamed body that outgrew the limit
            await _error_response(error)(scope, receive, send)


def _body_too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large_upload", f"the request body is over the {limit:,}-byte limit")


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse({"code": error.code, "message": error.message}, error.status, headers=error.headers)


def create_app(config: ServiceConfig | None = None, load_in_background: bool = True) -> FastAPI:
    config = config or ServiceConfig()
    service = Service(config)
    multipart_overhead = 64 * 1024

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
    app.state.service = service

    def limit_for(path: str) -> int:
        files = config.max_batch if path.endswith("/batch") else 1
        return files * config.max_upload_bytes + multipart_overhead

    app.add_middleware(BodyLimit, limit_for=limit_for)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        missing = any(e.get("type") == "missing" for e in error.errors())
        code = "missing_file" if missing else "invalid_request"
        fields = ", ".join(".".join(map(str, e.get("loc", ()))) for e in error.errors())
        return _error_response(ApiError(422, code, f"invalid or missing form field(s): {fields}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return _error_response(ApiError(error.status_code, code, str(error.detail)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        return _error_response(ApiError(500, "internal", f"unexpected {type(error).__name__}"))

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
        if service.predictor is None:
            raise ApiError(503, "not_ready", service.load_error or "the model is still loading", {"Retry-After": "5"})
        return service.health()

    @app.get("/v1/model", responses={503: ERRORS[503]}, tags=["model"])
    async def model_card() -> dict[str, Any]:
        """The model card (classes, input, calibration, data, training, metrics, reference answers), the runtime
        that serves it and the result of its self-check on this processor."""
        if service.predictor is None:
            raise ApiError(503, "not_ready", service.load_error or "the model is still loading", {"Retry-After": "5"})
        predictor = service.predictor
        return {
            "name": service.model_ref.name,
            "version": service.model_ref.version,
            **predictor.metadata,
            "runtime": predictor.runtime,
            "self_check_result": predictor.check.to_dict(),
        }

    @app.post("/v1/predict", response_model=PredictionBody, responses=ERRORS, tags=["predict"])
    async def predict(file: Photo):
        """Classify one photo."""
        data = await read_upload(file, config.max_upload_bytes)
        (prediction,) = await service.predict([(file.filename, data)])
        if prediction.error_code:
            raise image_error(prediction)
        return service.body(file.filename, prediction)

    @app.post("/v1/predict/batch", response_model=BatchBody, responses=ERRORS, tags=["predict"])
    async def predict_batch(
        files: Annotated[list[UploadFile], File(description="photos, at most the batch limit (32 by default)")],
    ):
        """Classify up to `max_batch` photos; a bad file gets its own error and never fails the batch."""
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
        for (index, name, _), prediction in zip(good, predictions, strict=True):
            if prediction.error_code:
                error = image_error(prediction)
                items[index].error = ErrorBody(code=error.code, message=error.message)
            else:
                items[index].result = service.body(name, prediction)
        return BatchBody(results=items, model=service.model_ref)

    return app


def serve(config: ServiceConfig, host: str, port: int) -> None:
    import uvicorn

    print(f"Pilah API on http://{host}:{port}  (docs at /docs; Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
