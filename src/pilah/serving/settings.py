"""The API's settings, with the defaults that `pilah serve` offers too (one place for both)."""

from __future__ import annotations

from dataclasses import dataclass

from pilah.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and headers around the files of one request


@dataclass(frozen=True)
class ServiceConfig:
    model: str | None = None  # None: the bundled model
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB  # per file; a batch may carry max_batch files of this size
    max_batch: int = 32
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_inference_batch: int = 32  # waiting requests' images run through the model together, up to this many
    queue: int = 64  # requests waiting beyond those running; more get 503
    timeout_s: float = 60.0  # a request waiting or running longer gets 504
    top_k: int = 3
    corrections: str | None = None  # a folder: POST /v1/feedback keeps corrections there; None: feedback is off
    max_corrections: int = 10_000  # photos the corrections folder may hold
    recent_predictions: int = 256  # predictions kept (with their photo) for feedback by id, when corrections are on
    recent_megabytes: float = 256.0  # ... and at most this much photo data

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
