"""The runtimes that compute a model's answers: Keras for `.keras` files, ONNX Runtime, TensorFlow Lite.

Each runner takes a batch of RGB pixels (float32, 0-255) and returns the class probabilities and, when the model
card names an embedding layer (`open_set.layer`), that layer's output, from which `inference.open_set` tells how
unlike the training photos a photo is; it describes itself for logs and the self-check. `runtime_candidates`
lists the ways to run one model file, fastest first.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from pilah.errors import UsageError
from pilah.inference.card import ModelCard

KERAS_MISSING = "Keras and TensorFlow are not installed: pip install 'pilah[train]'"
EMBEDDING_OUTPUT = "embedding"  # the name of an exported graph's second output
Outputs = tuple[np.ndarray, np.ndarray | None]  # probabilities, and the embedding (None: the model has none)


def keras_installed() -> bool:
    """Whether `.keras` models (and Grad-CAM) can run here: `pip install 'pilah[train]'` adds them."""
    return importlib.util.find_spec("keras") is not None


def import_keras():
    """Keras, or a usage error that says how to install it (the default install runs ONNX models only)."""
    try:
        import keras
    except ImportError as error:
        raise UsageError(KERAS_MISSING) from error
    return keras


THREADS_ENV = "PILAH_THREADS"  # threads per model instance; 0 or unset: the runtime's choice (every core)


def threads() -> int:
    """Several model instances on one machine (e.g. Ray actors) each take a share of the cores."""
    return int(os.environ.get(THREADS_ENV) or 0)


class KerasRunner:
    """A `.keras` file, loaded in Keras's safe mode (no arbitrary code from the file)."""

    pads_batches = True

    def __init__(self, path: Path, embedding: str | None = None) -> None:
        keras = import_keras()  # the heavy import happens here, once, not when `pilah` is imported
        self.model = keras.saving.load_model(path, safe_mode=True)
        self.image_size = int(self.model.input_shape[1])
        self.description = f"keras {keras.__version__} ({keras.backend.backend()} backend), {path.name}"
        self._both = (
            keras.Model(self.model.inputs, [self.model.output, self.model.get_layer(embedding).output])
            if embedding
            else None
        )

    def __call__(self, batch: np.ndarray) -> Outputs:
        if self._both is None:
            return np.asarray(self.model.predict_on_batch(batch)), None
        probabilities, embedding = self._both.predict_on_batch(batch)
        return np.asarray(probabilities), np.asarray(embedding)


class OnnxRunner:
    """A `pilah export --format onnx` file, run by ONNX Runtime (no TensorFlow import at all). `optimisation`
    is ONNX Runtime's graph optimisation level: "all" fuses int8 nodes into the processor's fastest kernels;
    "basic" keeps quantize/dequantize pairs around float kernels (slower, the same on every processor)."""

    model = None
    pads_batches = False
    LEVELS = ("all", "basic")

    def __init__(self, path: Path, optimisation: str = "all", embedding: str | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads()
        options.enable_cpu_mem_arena = False  # batch sizes vary under load: free buffers, don't keep the peak
        options.graph_optimization_level = {
            "all": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "basic": onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        }[optimisation]
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0]
        self.image_size = int(self.input.shape[1])
        self.description = f"onnxruntime {onnxruntime.__version__}, graph optimisation {optimisation}, {path.name}"
        names = [output.name for output in self.session.get_outputs()]
        if embedding and EMBEDDING_OUTPUT not in names:
            raise UsageError(f"{path.name}: its card names an embedding, the file has no {EMBEDDING_OUTPUT!r} output")
        self.outputs = [names[0], EMBEDDING_OUTPUT] if embedding else [names[0]]

    def __call__(self, batch: np.ndarray) -> Outputs:
        found = self.session.run(self.outputs, {self.input.name: batch})
        return found[0], (found[1] if len(found) > 1 else None)


class TfliteRunner:
    """A `pilah export --format tflite` file, run by TensorFlow Lite's interpreter, with its default
    delegate (XNNPACK) or, with `delegates=False`, with its reference kernels only."""

    model = None
    pads_batches = True

    def __init__(self, path: Path, delegates: bool = True, embedding: str | None = None) -> None:
        import tensorflow as tf

        resolver = tf.lite.experimental.OpResolverType
        self.interpreter = tf.lite.Interpreter(
            model_path=str(path),
            num_threads=threads() or os.cpu_count(),
            experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self.input = self.interpreter.get_input_details()[0]
        # the class probabilities are the output with the fewest values per photo, the pooled features the other
        outputs = sorted(self.interpreter.get_output_details(), key=lambda detail: int(detail["shape"][-1]))
        self.output = outputs[0]
        self.embedding = outputs[1] if embedding and len(outputs) > 1 else None
        if embedding and self.embedding is None:
            raise UsageError(f"{path.name}: its card names an embedding, the file has no second output")
        self.image_size = int(self.input["shape"][1])
        self.batch_size = 0
        kernels = "default delegates" if delegates else "built-in kernels only"
        self.description = f"tflite (tensorflow {tf.__version__}), {kernels}, {path.name}"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) != self.batch_size:
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape)
            self.interpreter.allocate_tensors()
            self.batch_size = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        embedding = None if self.embedding is None else self.interpreter.get_tensor(self.embedding["index"])
        return self.interpreter.get_tensor(self.output["index"]), embedding


Runner = KerasRunner | OnnxRunner | TfliteRunner
SUFFIXES = (".keras", ".onnx", ".tflite")


def runtime_candidates(path: Path, card: ModelCard) -> list[tuple[str, Callable[[], Runner]]]:
    """The ways to run a model file, fastest first: the same file with fewer optimisations, then the `.keras`
    file it was exported from (when it is there and Keras is installed)."""
    suffix = path.suffix.lower()
    embedding = card.embedding_layer
    if suffix == ".onnx":
        candidates = [
            (f"onnxruntime ({level})", partial(OnnxRunner, path, level, embedding)) for level in OnnxRunner.LEVELS
        ]
    elif suffix == ".tflite":
        candidates = [(f"tflite (delegates {d})", partial(TfliteRunner, path, d, embedding)) for d in (True, False)]
    else:
        candidates = []
    source = path if suffix == ".keras" else source_model(path, card)
    if source is not None:
        candidates.append((f"keras ({source.name})", partial(KerasRunner, source, embedding)))
    return candidates


def source_model(model_path: Path, card: ModelCard) -> Path | None:
    """The `.keras` file an export was made from (its card names it), beside the export or in `models/` of the
    working directory; None if it is in neither. Grad-CAM and the self-check's last fallback need it."""
    if model_path.suffix == ".keras":
        return model_path
    source = card.source
    if not source:
        return None
    candidates = (model_path.with_name(source), Path.cwd() / "models" / source)
    return next((candidate for candidate in candidates if candidate.is_file()), None)
