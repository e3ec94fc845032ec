"""REST API: `pilah serve` runs this FastAPI service (uvicorn) for sorting machines, bots and other apps.

Every error is JSON `{"code": ..., "message": ...}` with a stable code (`errors.py`). Uploads are recognised by
their bytes (never by name or declared type) and bounded in size (`limits.py`). One inference worker batches
whatever requests are waiting into one model call (`batching.py`). When the queue is full the service answers
503 with `Retry-After` instead of piling up memory. The routes live in `routes/`, the model behind them in
`service.py`, the guards of the one route that writes in `guards.py`.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pilah import __version__
from pilah.serving.errors import add_error_handlers, json_errors_protocol
from pilah.serving.limits import BodyLimit
from pilah.serving.routes import feedback, predict, service
from pilah.serving.service import Service
from pilah.serving.settings import MULTIPART_OVERHEAD, ServiceConfig


def create_app(config: ServiceConfig | None = None, load_in_background: bool = True) -> FastAPI:
    config = config or ServiceConfig()
    state = Service(config)

    async def lifespan(app: FastAPI):
        if load_in_background:
            threading.Thread(target=state.load, name="model-loader", daemon=True).start()
        else:
            state.load()
        yield

    app = FastAPI(
        title="Pilah API",
        version=__version__,
        description="Classify photos of household waste into 12 classes (Xception, Keras 3).",
        lifespan=lifespan,
    )
    app.state.service = state

    def limit_for(path: str) -> int:  # /v1/feedback carries one photo, as /v1/predict
        files = config.max_batch if path.endswith("/batch") else 1
        return files * config.max_upload_bytes + MULTIPART_OVERHEAD

    app.add_middleware(BodyLimit, limit_for=limit_for)
    if config.allowed_origins:  # browsers on these sites may call the API, feedback included
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )
    add_error_handlers(app)
    for module in (service, predict, feedback):
        app.include_router(module.router)
    return app


def serve(config: ServiceConfig, host: str, port: int) -> None:
    import uvicorn

    print(f"Pilah API on http://{host}:{port}  (docs at /docs; Ctrl-C stops it)", flush=True)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=5,
        http=json_errors_protocol(),
    )
