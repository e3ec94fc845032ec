"""Serving replicas on Ray Serve (`pip install 'pilah[ray]'`, `pilah serve --engine ray --replicas N`).

The same FastAPI app as `pilah serve` (routes, limits, errors, OpenAPI schema) becomes a Ray Serve deployment
of N replicas behind Serve's HTTP proxy; each replica loads the model once (and checks it on its processor) and
keeps the app's own dynamic batching and admission control. Serve restarts a replica that dies and routes
around it meanwhile. docs/scaling.md has the autoscaling settings.
"""

from __future__ import annotations

import os
from typing import Any

from pilah.inference.runtimes import THREADS_ENV
from pilah.serving.api import create_app
from pilah.serving.settings import ServiceConfig

HEALTH_CHECK_PERIOD_S = 5  # how often Serve asks each replica whether it is alive
# Serve gives its HTTP proxy 5 s to start, then kills it and starts another, which fails `serve.start` (it waits
# on the first one). A busy machine takes longer than 5 s to start a Python worker, so a Ray started here gives it
# as long as `serve.start` waits (60 s); a cluster keeps its own setting.
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"
PROXY_READY_TIMEOUT_S = 60


def deployment(config: ServiceConfig, replicas: int, autoscaling: dict[str, Any] | None = None, threads: int = 0):
    """The bound deployment: `replicas` fixed, or Serve's autoscaling config (min/max replicas, target load);
    `threads` per replica for the model (0: the runtime's choice), so replicas on one machine share its cores."""
    from ray import serve

    @serve.deployment(
        name="pilah",
        num_replicas=None if autoscaling else replicas,
        autoscaling_config=autoscaling,
        ray_actor_options={"num_cpus": 1, "runtime_env": {"env_vars": {THREADS_ENV: str(threads)}}},
        max_ongoing_requests=config.queue + config.max_inference_batch,  # the app answers 503 beyond its queue
        health_check_period_s=HEALTH_CHECK_PERIOD_S,
    )
    @serve.ingress(create_app(config, load_in_background=False))
    class PilahService:
        """A replica: the app's lifespan loads the model before Serve sends it a request."""

    return PilahService.bind()


def autoscaling(config: ServiceConfig, replicas: int, max_replicas: int | None) -> dict[str, Any] | None:
    """`--max-replicas`: Serve adds replicas (up to that many) while each has more than one full model batch of
    requests on average, and removes them when the load falls, never below `--replicas`."""
    if not max_replicas:
        return None
    return {
        "min_replicas": replicas,
        "max_replicas": max_replicas,
        "target_ongoing_requests": config.max_inference_batch,
        "upscale_delay_s": 10,
        "downscale_delay_s": 120,
    }


def serve_on_ray(
    config: ServiceConfig,
    host: str,
    port: int,
    replicas: int,
    address: str | None = None,
    max_replicas: int | None = None,
) -> None:
    import ray
    from ray import serve

    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # one logical CPU per replica, and one for Serve's controller and proxy
        os.environ.setdefault(PROXY_READY_ENV, str(PROXY_READY_TIMEOUT_S))  # the controller inherits it
        ray.init(num_cpus=replicas + 1, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        scaling = autoscaling(config, replicas, max_replicas)
        count = f"{replicas}-{max_replicas}" if scaling else str(replicas)
        print(f"Pilah API on Ray Serve, {count} replicas, on http://{host}:{port}  (Ctrl-C stops it)", flush=True)
        threads = 0 if address else max(1, (os.cpu_count() or 1) // replicas)  # a cluster: each node's own cores
        app = deployment(config, replicas, scaling, threads)
        serve.run(app, name="pilah", route_prefix="/", blocking=True)
    finally:  # Ctrl-C or `kill`: the replicas, and a Ray started here, go too
        serve.shutdown()
        ray.shutdown()
