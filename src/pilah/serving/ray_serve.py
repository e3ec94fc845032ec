"""Serving replicas on Ray Serve (`pip install 'pilah[ray]'`, `pilah serve --engine ray --replicas N`).

The same FastAPI app as `pilah serve` (routes, limits, errors, OpenAPI schema) becomes a Ray Serve deployment
of N replicas behind Serve's HTTP proxy; each replica loads the model once (and checks it on its processor) and
keeps the app's own dynamic batching and admission control. Serve restarts a replica that dies and routes
around it meanwhile. Recent predictions (for feedback by id) live in one actor that every replica shares, so an id
works whichever replica the feedback reaches. docs/scaling.md has the autoscaling settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any

from pilah.errors import ServeError
from pilah.inference.runtimes import THREADS_ENV
from pilah.serving.api import create_app
from pilah.serving.service import RAY_NAMESPACE, RecentPredictions
from pilah.serving.settings import ServiceConfig

READY_LINE = "all replicas ready"  # printed once every replica answers: what a supervisor (or a test) waits for
HEALTH_CHECK_PERIOD_S = 5  # how often Serve asks each replica whether it is alive
# Serve gives its HTTP proxy 5 s to start, then kills it and starts another, which fails `serve.start` (it waits
# on the first one). A busy machine takes longer than 5 s to start a Python worker, so a Ray started here gives it
# as long as `serve.start` waits (60 s); a cluster keeps its own setting.
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"
PROXY_READY_TIMEOUT_S = 60
SHARED_RECENT_NAME = "pilah-recent-predictions"
SHUTDOWN_WAIT_S = 8  # how long Serve on a cluster, or the driver's Ray state, gets to shut down
STOP_GRACE_S = 3  # how long Ray's own processes then get to exit before they are killed


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

    _start_ray(address, replicas)
    try:
        if config.corrections:  # owned by this driver (its handle lives until return): it goes when `pilah serve` does
            recent = ray.remote(num_cpus=0)(RecentPredictions).options(name=SHARED_RECENT_NAME)
            _recent_actor = recent.remote(config.recent_predictions, config.recent_bytes)
            config = config.model_copy(update={"shared_recent": SHARED_RECENT_NAME})
        serve.start(http_options={"host": host, "port": port})
        scaling = autoscaling(config, replicas, max_replicas)
        count = f"{replicas}-{max_replicas}" if scaling else str(replicas)
        print(f"Pilah API on Ray Serve, {count} replicas, on http://{host}:{port}  (Ctrl-C stops it)", flush=True)
        threads = 0 if address else max(1, (os.cpu_count() or 1) // replicas)  # a cluster: each node's own cores
        app = deployment(config, replicas, scaling, threads)
        try:  # returns once every replica runs: the first answers requests before the others are up
            serve.run(app, name="pilah", route_prefix="/", blocking=False)
        except RuntimeError as error:  # a replica failed to load or check its model, or died while starting
            raise ServeError(f"the replicas did not start: {error}") from error
        print(f"{READY_LINE}: {count} replicas running", flush=True)
        threading.Event().wait()  # until Ctrl-C or SIGTERM (the CLI turns it into KeyboardInterrupt)
    except KeyboardInterrupt:  # how a server is stopped: status 0, as `pilah serve` without Ray (uvicorn) ends
        pass
    finally:  # the replicas, and a Ray started here, go too
        if address:  # a cluster stays up; the app goes
            _within(SHUTDOWN_WAIT_S, serve.shutdown)  # a replica being replaced can hold it up for ever
        else:  # the driver leaves first (it aborts if its raylet dies under it), then what Ray left running
            ray_processes = _descendants()
            print(f"stopping the {len(ray_processes)} processes of this Ray", flush=True)
            _within(SHUTDOWN_WAIT_S, ray.shutdown)
            _stop_all(ray_processes)
        print("stopped", flush=True)


def _start_ray(address: str | None, replicas: int) -> None:
    """Join the cluster at `address`, or start a local Ray: one logical CPU per replica, one for Serve's controller
    and proxy, one for the shared predictions. `ray.init` makes SIGTERM exit at once with status 15; the CLI's own
    handler (SIGTERM stops as Ctrl-C does) is put back."""
    import ray

    on_sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, namespace=RAY_NAMESPACE, log_to_driver=False)
    else:
        os.environ.setdefault(PROXY_READY_ENV, str(PROXY_READY_TIMEOUT_S))  # the controller inherits it
        ray.init(num_cpus=replicas + 2, namespace=RAY_NAMESPACE, include_dashboard=False, log_to_driver=False)
    signal.signal(signal.SIGTERM, on_sigterm)


def _within(seconds: float, *steps) -> None:
    """Run the steps in a daemon thread, waiting at most `seconds`: what does not finish is left to `_stop_all`."""
    worker = threading.Thread(target=lambda: [step() for step in steps], name="ray-shutdown", daemon=True)
    worker.start()
    worker.join(seconds)


def _descendants() -> list:
    import psutil

    return psutil.Process().children(recursive=True)


def _stop_all(processes: list) -> None:
    """Ray's agents (DashboardAgent, RuntimeEnvAgent) ignore SIGTERM and outlive `ray.shutdown()`, and the driver
    can die with its raylet before it gets to them: a Ray started here is stopped whole, first, the stragglers
    killed after a grace period. Requests still in flight are dropped, as with any server stopped."""
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_S)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
