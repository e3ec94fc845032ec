"""Classify images with a trained model: load once, decode as training did, never stop on a bad file."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pilah import hardware
from pilah.errors import ImageError, ModelNotFoundError, SelfCheckError, UsageError
from pilah.images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageSource, load_rgb, looks_like_image, pad_batch
from pilah.inference import selfcheck
from pilah.inference.calibration import apply_temperature, grade_answers
from pilah.inference.card import read_card
from pilah.inference.open_set import OpenSet
from pilah.inference.runtimes import SUFFIXES, Outputs, runtime_candidates
from pilah.resources import models_dir

MODEL_ENV = "PILAH_MODEL"
BUNDLED_MODEL_NAME = "pilah-xception.keras"  # the trained model: evaluate, export and Grad-CAM read it
BUNDLED_FAST_MODEL_NAME = "pilah-xception-int8.onnx"  # its int8 ONNX export: what predict, app and serve run
PACKAGED_MODELS = models_dir()
LOGGER = logging.getLogger("pilah")


def flip_averaged(run_batch: Callable[[np.ndarray], Any], batch: np.ndarray) -> Any:
    """Test-time augmentation: the mean of the outputs of each image and of its left-right mirror, both in one call
    of twice the batch. `run_batch` returns an array, or a tuple or list of them (None passes through)."""
    count = len(batch)
    both = run_batch(np.concatenate([batch, batch[:, :, ::-1]]))

    def mean(output):
        if output is None:
            return None
        output = np.asarray(output, dtype=np.float64)
        return (output[:count] + output[count:]) / 2

    return tuple(map(mean, both)) if isinstance(both, tuple | list) else mean(both)


@dataclass
class Prediction:
    source: str
    label: str | None = None
    confidence: float = 0.0
    uncertain: bool = False  # any grade but "sure"
    grade: str | None = None  # one of GRADES
    novelty: float | None = None  # how unlike the training photos (`inference.open_set`); None: the card has no bank
    top_k: list[tuple[str, float]] = field(default_factory=list)
    probabilities: dict[str, float] = field(default_factory=dict)
    latency_ms: float = 0.0
    error: str | None = None  # why a file could not be classified, for people
    error_code: str | None = None  # why, as a stable code (`ImageError.code`), for programs and translations

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "label": self.label,
            "confidence": self.confidence,
            "uncertain": self.uncertain,
            "grade": self.grade,
            "novelty": self.novelty,
            "top_k": [{"label": k, "probability": p} for k, p in self.top_k],
            "probabilities": self.probabilities,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "error_code": self.error_code,
        }


def bundled_model(fast: bool = True) -> Path:
    """The model Pilah runs when none is named: `$PILAH_MODEL`; else, when `fast`, the int8 ONNX export that
    ships inside the package; else the `.keras` model in `models/` of the working directory (a checkout of the
    repository; it is too large for the package)."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    candidates = [PACKAGED_MODELS / BUNDLED_FAST_MODEL_NAME] if fast else []
    candidates.append(Path.cwd() / "models" / BUNDLED_MODEL_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"no bundled model found ({', '.join(map(str, candidates))}); pass --model PATH or set {MODEL_ENV}"
    )


def _fallback_warning(path: Path, failed: list[selfcheck.CheckResult], chosen: selfcheck.CheckResult | None) -> str:
    lines = [f"{path.name}: on this processor ({hardware.describe()}) these runtimes do not give the model's answers:"]
    lines += [f"  {r.runtime}: {r.note or r.summary()}" for r in failed]
    if chosen is None:
        lines.append("  no runtime left to try: refusing to serve wrong answers")
    else:
        lines.append(f"  using {chosen.runtime} instead: {chosen.summary()}")
    return "\n".join(lines)


class CalibratedRuntime:
    """One runtime with the model card's calibration around it (temperature, flip TTA, the open-set score): what
    the self-check compares with the card's reference answers, built whole before it is checked, and what the
    Predictor serves once it agrees."""

    def __init__(self, runner: Any, temperature: float, flip_tta: bool, open_set: OpenSet | None) -> None:
        self.runner, self.temperature, self.flip_tta, self.open_set = runner, temperature, flip_tta, open_set

    @property
    def runtime(self) -> str:
        return self.runner.description

    @property
    def image_size(self) -> int:
        return self.runner.image_size

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and the pooled features of the open-set layer (None when there is none),
        averaged over each image and its mirror when the model card says so."""
        batch = batch.astype(np.float32)
        probs, features = flip_averaged(self._run, batch) if self.flip_tta else self._run(batch)
        return apply_temperature(probs, self.temperature), features

    def answers(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and each photo's novelty (None when the card has no open-set bank)."""
        probs, features = self.outputs(batch)
        novelty = None if self.open_set is None or features is None else self.open_set.novelty(features)
        return probs, novelty

    def _run(self, batch: np.ndarray) -> Outputs:
        """For runtimes that compile per input shape (TensorFlow, TFLite), batches are padded to a power
        of two: a handful of shapes to compile and keep instead of one per batch size (which, under a
        server's varying load, grows memory). ONNX Runtime takes any batch size as it is."""
        count = len(batch)
        if self.runner.pads_batches:
            batch = pad_batch(batch, 1 << max(0, count - 1).bit_length())
        probs, features = self.runner(batch)
        features = None if features is None else np.asarray(features[:count], dtype=np.float64).reshape(count, -1)
        return np.asarray(probs[:count], dtype=np.float64), features


class Predictor:
    """A loaded model with its labels; `predict` takes paths, bytes, file objects, PIL images or arrays."""

    def __init__(
        self,
        model: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        self_check: bool = True,
        embedding: str | None = None,
    ) -> None:
        """`embedding` names a layer whose pooled output `features` returns, for fitting an open-set score to a
        model whose card has none (then no photo is graded unfamiliar)."""
        self.model_path = Path(model) if model else bundled_model()
        if not self.model_path.is_file():
            raise ModelNotFoundError(f"model not found: {self.model_path}")
        if self.model_path.suffix.lower() not in SUFFIXES:
            raise ModelNotFoundError(f"{self.model_path}: not a model file ({', '.join(SUFFIXES)})")
        self.card = read_card(self.model_path)
        if embedding:
            self.card.open_set = {"layer": embedding}
        self.classes: list[str] = list(self.card.classes)
        self.uncertain_below = self.card.uncertain_below
        self.likely_margin, self.two_from = self.card.grades.likely_margin, self.card.grades.two_from
        self.open_set = None if embedding else OpenSet.from_card(self.card.open_set, self.model_path)
        self.max_pixels = max_pixels
        self.engine, self.check = self._load_runtime(self_check)
        self.model = self.engine.runner.model  # the Keras model (for Grad-CAM), or None for an exported file

    @property
    def runtime(self) -> str:
        return self.engine.runtime

    @property
    def image_size(self) -> int:
        return self.engine.image_size

    @property
    def name(self) -> str:
        """The model's name for people and records: the card's, else the file's stem."""
        return self.card.name or self.model_path.stem

    @property
    def version(self) -> str:
        """The Pilah version that made the model ("?" for a run's model without a card)."""
        return self.card.pilah_version

    def _load_runtime(self, self_check: bool) -> tuple[CalibratedRuntime, selfcheck.CheckResult]:
        """The first runtime that gives the card's reference answers on this processor; a loud warning for each
        one that does not, and `SelfCheckError` when none does. Each is checked whole, before this Predictor
        holds it."""
        failed: list[selfcheck.CheckResult] = []
        for name, make in runtime_candidates(self.model_path, self.card):
            try:
                runner = make()
            except (ImportError, UsageError) as error:  # e.g. the .keras fallback where Keras is not installed
                failed.append(selfcheck.CheckResult(runtime=name, passed=False, note=f"unavailable: {error}"))
                continue
            engine = CalibratedRuntime(runner, self.card.temperature, self.card.flip_tta, self.open_set)
            if not self_check:
                return engine, selfcheck.CheckResult(runtime=engine.runtime, passed=None, note="self-check turned off")
            result = selfcheck.check(engine, self.card.self_check)
            if result.passed is not False:
                if failed:
                    LOGGER.warning(_fallback_warning(self.model_path, failed, result))
                return engine, result
            failed.append(result)
        raise SelfCheckError(_fallback_warning(self.model_path, failed, None))

    def outputs(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.engine.outputs(batch)

    def answers(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.engine.answers(batch)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.engine.answers(batch)[0]

    def predict(self, source: ImageSource, top_k: int = 3) -> Prediction:
        return self.predict_batch([source], top_k)[0]

    def predict_batch(self, sources: list[ImageSource], top_k: int = 3) -> list[Prediction]:
        """One prediction per source, in order; a bad source gets `error` set and the rest go on."""
        started = time.perf_counter()
        results = [Prediction(source=_describe(s)) for s in sources]
        arrays, good = [], []
        for i, source in enumerate(sources):
            try:
                arrays.append(load_rgb(source, self.image_size, self.max_pixels))
                good.append(i)
            except ImageError as error:
                results[i].error, results[i].error_code = str(error), error.code
        if arrays:
            probs, novelty = self.answers(np.stack(arrays))
            for n, (i, p) in enumerate(zip(good, probs, strict=True)):
                self._fill(results[i], p, top_k, None if novelty is None else float(novelty[n]))
        latency = (time.perf_counter() - started) * 1000 / max(1, len(sources))
        for r in results:
            r.latency_ms = round(latency, 2)
        return results

    def _fill(self, result: Prediction, probs: np.ndarray, top_k: int, novelty: float | None) -> None:
        order = np.argsort(-probs)
        result.label = self.classes[int(order[0])]
        result.confidence = float(probs[order[0]])
        result.novelty = novelty
        result.grade = self.grade(result.confidence, float(probs[order[1]]) if len(order) > 1 else 0.0, novelty)
        result.uncertain = result.grade != "sure"
        result.top_k = [(self.classes[int(i)], float(probs[i])) for i in order[:top_k]]
        result.probabilities = {c: float(p) for c, p in zip(self.classes, probs, strict=True)}

    def grade(self, first: float, second: float, novelty: float | None = None) -> str:
        """The grade of an answer whose two most likely classes have these (calibrated) probabilities, for a photo
        this unlike the training photos."""
        unfamiliar_above = self.open_set.threshold if self.open_set else np.inf
        typical_up_to = self.open_set.typical_up_to if self.open_set else np.inf
        return str(
            grade_answers(
                np.array(first),
                np.array(second),
                self.uncertain_below,
                self.likely_margin,
                self.two_from,
                np.array(np.nan if novelty is None else novelty),
                unfamiliar_above,
                typical_up_to,
            )
        )

    def predict_paths(self, paths: Iterable[Path], batch_size: int = 32, top_k: int = 3) -> Iterator[Prediction]:
        batch: list[Path] = []
        for path in paths:
            batch.append(path)
            if len(batch) == batch_size:
                yield from self.predict_batch(list(batch), top_k)
                batch.clear()
        if batch:
            yield from self.predict_batch(list(batch), top_k)


def _describe(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return getattr(source, "name", type(source).__name__)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders recursively, in sorted order, keeping files with an image suffix or whose
    first bytes are an image's (a photo saved without its extension is still found; a README is not)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file())
            paths += [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES or looks_like_image(p)]
        else:
            paths.append(item)
    return paths
