"""Batch prediction on Ray Data (`pip install 'pilah[ray]'`, `pilah predict SRC... --engine ray`).

Ray Data reads the files (local folders, or the remote file systems it reads through pyarrow and fsspec, e.g.
`s3://`, `gs://`), a pool of actors classifies them with `Predictor` (each loads the model once and checks it on
its own processor), and the driver writes one row per image, in the columns of `pilah predict --csv`, as the rows
arrive. A file that is not a usable image keeps its row with the reason in `error`; it never fails the job. A
worker that dies is restarted and its batch retried (Ray's actor restarts and task retries). Without an address
a local Ray starts on this machine; with one, the job joins that cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pilah.images import DEFAULT_MAX_PIXELS
from pilah.inference import results
from pilah.inference.runtimes import THREADS_ENV

RESTARTS = 3  # a dead actor comes back this many times, and its batch is retried as often
BATCH_SIZE = 32  # images per model call


@dataclass(frozen=True)
class RayJob:
    sources: list[str]  # files, or remote URIs that Ray Data reads itself
    model: str | None = None  # None: the bundled model
    workers: int = 2  # actors, each with one model
    address: str | None = None  # a running cluster ("auto", "ray://HOST:10001"); None: a local Ray
    region: str | None = None
    language: str = "en"
    top_k: int = 3
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = BATCH_SIZE


class PredictActor:
    """A Ray actor: loads the model once, then classifies batches of raw file bytes into result rows."""

    def __init__(self, job: RayJob, classes: list[str], threads: int) -> None:
        os.environ[THREADS_ENV] = str(threads)  # the actors share the machine's cores
        from pilah.inference.predictor import Predictor

        self.job, self.classes = job, classes
        self.predictor = Predictor(job.model, max_pixels=job.max_pixels)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        predictions = self.predictor.predict_batch(list(batch["bytes"]), self.job.top_k)
        header = results.columns(self.classes, self.job.region)
        rows = []
        for path, prediction in zip(batch["path"], predictions, strict=True):
            prediction.source = str(path)
            rows.append([str(v) for v in results.row(prediction, self.classes, self.job.region, self.job.language)])
        return {name: [r[i] for r in rows] for i, name in enumerate(header)}


def start_ray(address: str | None, workers: int) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # one logical CPU per actor, and one for reading files
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)


def predict_rows(job: RayJob, classes: list[str]) -> Iterator[list[str]]:
    """Every image's row, in the order of `sources`, as the actors finish them."""
    import ray

    start_ray(job.address, job.workers)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the CLI shows one bar for the whole job
    threads = max(1, (os.cpu_count() or 1) // job.workers) if not job.address else 0
    dataset = ray.data.read_binary_files(job.sources, include_paths=True, ignore_missing_paths=False)
    predicted = dataset.map_batches(
        PredictActor,
        fn_constructor_kwargs={"job": job, "classes": classes, "threads": threads},
        batch_size=job.batch_size,
        compute=ray.data.ActorPoolStrategy(size=job.workers),
        num_cpus=1,
        max_restarts=RESTARTS,
        max_task_retries=RESTARTS,
    )
    header = results.columns(classes, job.region)
    for batch in predicted.iter_batches(batch_size=job.batch_size, batch_format="numpy"):
        yield from ([str(batch[name][i]) for name in header] for i in range(len(batch[header[0]])))


def run(job: RayJob, out: Path, classes: list[str], progress: Callable[[int], None] | None = None) -> int:
    """Classify every source into `out` (.csv or .parquet); returns the number of rows written."""
    with results.ResultWriter(out, results.columns(classes, job.region)) as writer:
        for values in predict_rows(job, classes):
            writer.write([values])
            if progress:
                progress(writer.rows)
        return writer.rows
