"""The guards on the one route that writes to disk, POST /v1/feedback (docs/api.md "Feedback"): no form posts
from other sites' pages, a rate per client, and a bearer token when one is set (`pilah serve` requires one
beyond loopback). Checked in that order, so failed tokens count against the rate too."""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict

from fastapi import Request

from pilah.serving.errors import ApiError
from pilah.serving.settings import ServiceConfig

TRACKED_CLIENTS = 4096  # rate buckets kept; the least recently seen client's goes first
SECONDS_PER_MINUTE = 60.0


class RateLimit:
    """A token bucket per client address: `per_minute` requests a minute, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute, self.clock = per_minute, clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client: (tokens, when)

    def take(self, client: str) -> float:
        """Spend one token; returns 0, or the seconds until the client may try again."""
        now = self.clock()
        tokens, then = self.buckets.pop(client, (float(self.per_minute), now))
        tokens = min(self.per_minute, tokens + (now - then) * self.per_minute / SECONDS_PER_MINUTE)
        wait = 0.0 if tokens >= 1 else (1 - tokens) * SECONDS_PER_MINUTE / self.per_minute
        self.buckets[client] = (tokens - 1 if tokens >= 1 else tokens, now)
        while len(self.buckets) > TRACKED_CLIENTS:
            self.buckets.popitem(last=False)
        return wait


class FeedbackGuard:
    def __init__(self, config: ServiceConfig) -> None:
        self.token = config.feedback_token.get_secret_value() if config.feedback_token else None
        self.allowed_origins = set(config.allowed_origins)
        self.rate = RateLimit(config.feedback_per_minute)

    def check(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin and origin not in self.allowed_origins and origin != own_origin(request):
            raise ApiError("feedback from another site's page is refused (see --allow-origin)", "cross_origin", 403)
        wait = self.rate.take(request.client.host if request.client else "?")
        if wait:
            raise ApiError("too much feedback from this address; retry later", "rate_limited", 429, retry(wait))
        if self.token is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {self.token}".encode()
        ):
            raise ApiError(
                "feedback needs this server's token: Authorization: Bearer <token>",
                "unauthorized",
                401,
                {"WWW-Authenticate": "Bearer"},
            )


def own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def retry(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds + 0.5)))}
