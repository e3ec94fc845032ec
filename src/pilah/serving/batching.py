"""Dynamic batching: one worker thread runs every waiting request's images through the model in one call.

No added delay when idle; more throughput under load, where batches run faster per image than single images.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from pilah.inference.predictor import Predictor


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
