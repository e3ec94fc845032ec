"""The API's settings: one typed object (pydantic-settings) whose defaults `pilah serve` offers too, and which
reads `PILAH_<NAME>` environment variables (e.g. `PILAH_FEEDBACK_TOKEN`) where no flag sets a value."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pilah.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB, MEGABYTE

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the files of one request
MAX_QUERY_BYTES = 4096  # a longer query string is no request of ours: 414 `query_too_long`
DRAIN_SECONDS = 5.0  # how long an early answer (a form that cannot be parsed) waits for the rest of the body
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


class ServiceConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PILAH_", frozen=True, extra="forbid")

    model: str | None = None  # None: the bundled model
    max_upload_mb: float = Field(DEFAULT_MAX_UPLOAD_MB, gt=0)  # per file; a batch may carry max_batch such files
    max_batch: int = Field(32, ge=1)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_inference_batch: int = Field(32, ge=1)  # waiting requests' images run through the model together
    queue: int = Field(64, ge=0)  # requests waiting beyond those running; more get 503
    timeout_s: float = Field(60.0, gt=0)  # a request waiting or running longer gets 504
    top_k: int = Field(3, ge=1)
    corrections: str | None = None  # a folder: POST /v1/feedback keeps corrections there; None: feedback is off
    max_corrections: int = Field(10_000, ge=1)  # photos the corrections folder may hold
    recent_predictions: int = Field(256, ge=0)  # predictions kept (with their photo) for feedback by id
    recent_megabytes: float = Field(256.0, ge=0)  # ... and at most this much photo data
    # POST /v1/feedback writes to disk, so it is guarded: a bearer token (required beyond loopback), no form posts
    # from other web sites' pages unless their origin is allowed, and a rate per client.
    feedback_token: SecretStr | None = None
    allowed_origins: tuple[str, ...] = ()  # e.g. ("https://sort.example.org",): CORS and cross-origin feedback
    feedback_per_minute: int = Field(30, ge=1)  # per client address; more get 429 with Retry-After
    shared_recent: str | None = None  # the name of a Ray actor that replicas share recent predictions through

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MEGABYTE)

    @property
    def recent_bytes(self) -> int:
        return int(self.recent_megabytes * MEGABYTE)
