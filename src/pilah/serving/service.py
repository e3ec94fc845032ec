"""The loaded model behind the API: admission control, the answer for one photo, recent predictions and the
corrections folder. The routes (`routes/`) are thin layers over it."""

from __future__ import annotations

import uuid
from collections import OrderedDict

import anyio
from fastapi import Request

from pilah import __version__, guidance
from pilah.data.corrections import Correction, CorrectionStore
from pilah.errors import PilahError, image_http_status
from pilah.inference.predictor import Prediction, Predictor
from pilah.inference.results import names_no_class
from pilah.serving.batching import Batcher
from pilah.serving.errors import ApiError
from pilah.serving.guards import FeedbackGuard
from pilah.serving.schemas import ClassProbability, FeedbackBody, Health, ModelRef, PredictionBody, SelfCheck
from pilah.serving.settings import ServiceConfig

RAY_NAMESPACE = "pilah"  # where replicas find the actor they share recent predictions through


class RecentPredictions:
    """The last predictions with their photos, so that feedback can quote an id instead of sending the photo
    again; bounded by count and by bytes (the oldest go first). One per process, or one Ray actor that every
    replica shares (`ray_serve.py`), so an id works whichever replica the feedback reaches."""

    def __init__(self, count: int, max_bytes: int) -> None:
        self.count, self.max_bytes = count, max_bytes
        self.items: OrderedDict[str, tuple[bytes, Prediction]] = OrderedDict()
        self.bytes = 0

    def add(self, photo: bytes, prediction: Prediction) -> str:
        key = uuid.uuid4().hex
        self.items[key] = (photo, prediction)
        self.bytes += len(photo)
        while self.items and (len(self.items) > self.count or self.bytes > self.max_bytes):
            old, _ = self.items.popitem(last=False)[1]
            self.bytes -= len(old)
        return key

    def get(self, key: str) -> tuple[bytes, Prediction] | None:
        return self.items.get(key)


class Service:
    """The loaded model and the admission control around it."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.predictor: Predictor | None = None
        self.load_error: str | None = None
        self.batcher: Batcher | None = None
        self.admitted = 0  # requests running or waiting; guarded by the event loop (one thread)
        self.store: CorrectionStore | None = None
        self.recent = RecentPredictions(config.recent_predictions, config.recent_bytes)
        self.shared_recent = None  # a Ray actor handle, under Ray Serve
        self.guard = FeedbackGuard(config)

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
                if self.config.shared_recent:
                    import ray

                    self.shared_recent = ray.get_actor(self.config.shared_recent, namespace=RAY_NAMESPACE)
            self.predictor = predictor
        except Exception as error:  # reported by /healthz and every request, not a crash
            self.load_error = str(error) if isinstance(error, PilahError) else f"{type(error).__name__}: {error}"

    def require_ready(self) -> Predictor:
        """The loaded predictor, or 503 `not_ready` (still loading, or it could not load: the message says why)."""
        if self.predictor is None:
            raise ApiError(self.load_error or "the model is still loading", "not_ready", 503, {"Retry-After": "5"})
        return self.predictor

    def health(self) -> Health:
        """A loaded service's health: the runtime that answers and its self-check on this processor."""
        check = SelfCheck(**self.predictor.check.to_dict())
        return Health(status="ok", ready=True, version=__version__, runtime=self.predictor.runtime, self_check=check)

    @property
    def model_ref(self) -> ModelRef:
        predictor = self.require_ready()
        return ModelRef(name=predictor.name, version=predictor.version)

    async def predict(self, files: list[tuple[str | None, bytes]]) -> list[Prediction]:
        self.require_ready()
        if self.admitted > self.config.queue:
            raise ApiError("too many requests in the queue; retry shortly", "overloaded", 503, {"Retry-After": "1"})
        self.admitted += 1
        try:
            with anyio.fail_after(self.config.timeout_s):
                return await self.batcher.predict([data for _, data in files])
        except TimeoutError as error:
            raise ApiError(f"no result within {self.config.timeout_s:g} s", "timeout", 504) from error
        finally:
            self.admitted -= 1

    async def remember(self, photo: bytes, prediction: Prediction) -> str:
        if self.shared_recent is not None:
            return await self.shared_recent.add.remote(photo, prediction)
        return self.recent.add(photo, prediction)

    async def recall(self, key: str) -> tuple[bytes, Prediction]:
        found = await self.shared_recent.get.remote(key) if self.shared_recent is not None else self.recent.get(key)
        if found is None:
            kept = self.config.recent_predictions
            message = f"no recent prediction {key!r} (the server keeps the last {kept}); send the photo instead"
            raise ApiError(message, "unknown_prediction", 404)
        return found

    async def body(
        self, filename: str | None, p: Prediction, photo: bytes, region: str | None, language: str
    ) -> PredictionBody:
        """The answer for one photo; kept for feedback by id when corrections are on."""
        no_class = names_no_class(p)
        return PredictionBody(
            id=await self.remember(photo, p) if self.store else None,
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

    def require_store(self, request: Request) -> CorrectionStore:
        """The corrections folder for a request its guards let through: 404 `feedback_disabled` without
        `--corrections`, 503 while the model loads."""
        if not self.config.corrections:
            raise ApiError("this server keeps no corrections (pilah serve --corrections DIR)", "feedback_disabled", 404)
        self.guard.check(request)
        self.require_ready()
        return self.store

    async def feedback(
        self, store: CorrectionStore, photo: bytes, prediction: Prediction, chosen: str, region: str | None, language
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
        record = await anyio.to_thread.run_sync(store.add, photo, correction)
        return FeedbackBody(**{key: record[key] for key in FeedbackBody.model_fields})


def service_of(request: Request) -> Service:
    return request.app.state.service


def image_error(p: Prediction) -> ApiError:
    code = p.error_code or "corrupt"
    return ApiError(p.error or code, code, image_http_status(code))


def check_advice(region: str | None, language: str) -> None:
    """422 for a region without a pack or a language Pilah does not speak, before any work is done."""
    if region is not None:
        guidance.pack(region)  # GuidanceError `unknown_region`, a 422
    if language not in guidance.LANGUAGES:
        raise ApiError(f"language must be one of {list(guidance.LANGUAGES)}", "unknown_language", 422)
