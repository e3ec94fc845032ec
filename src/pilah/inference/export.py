"""Export a trained model for fast inference: ONNX or TFLite, in float32, float16 or int8.

The exported graph is the inference path only, without the augmentation layers (inactive at inference):
RGB pixels (0-255) in, probabilities out, as from the `.keras` file, and, when the model card has an open-set
block, a second output `embedding` (the pooled features `inference.open_set` scores). A model card `<file>.json`
(e.g. `pilah-xception-int8.onnx.json`) goes beside the file, and the open-set bank `<file>.bank.npy`, so
`Predictor` and `pilah predict --model` load it with its classes, temperature, thresholds and bank.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pilah.errors import ExportError, ImageError
from pilah.files import write_json
from pilah.images import load_rgb
from pilah.inference import selfcheck
from pilah.inference.card import model_metadata
from pilah.inference.open_set import copy_bank
from pilah.inference.predictor import Predictor, expand_inputs
from pilah.modeling.anatomy import add_onnx_embedding, inference_model, onnx_head_nodes, onnx_preprocess_nodes
from pilah.runs import Run, RunPaths

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}
# ONNX int8 as exported: weights int8 in 7 bits (reduce_range), activations uint8, per channel, QDQ. On x86
# without VNNI, ONNX Runtime multiplies uint8 by int8 with VPMADDUBSW, whose int16 sum of two products
# saturates for full-range weights (2 x 255 x 128 > 32767) and named 10 of 12 example photos wrong; with 7-bit
# weights (2 x 255 x 64 <= 32767) it cannot. With VNNI the same file runs the same fast kernels.
ONNX_INT8 = (
    "weights int8 with reduce_range (7 bits), activations uint8, per channel, QDQ; pixel scaling and head in float"
)
QUANTIZATIONS = ("fp32", "fp16", "int8")
CALIBRATION_IMAGES = 200  # int8 calibration: enough images to fix each activation's range


def card_path(exported: Path) -> Path:
    return exported.with_name(exported.name + ".json")


def calibration_images(inputs: list[str | Path]) -> list[Path]:
    """Images and folders as given; a run folder stands for its training split (never test images)."""
    images: list[Path] = []
    for item in inputs:
        if RunPaths(Path(item)).manifest.is_file():
            run = Run.open(item)
            images += run.image_paths(run.split_rows("train"))
        else:
            images += expand_inputs([item])
    return images


def calibration_batches(paths: list[Path], size: int, count: int = CALIBRATION_IMAGES) -> Iterator[np.ndarray]:
    """One image at a time from an evenly spaced selection of `paths` (bad files skipped)."""
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).astype(int)]
    for path in chosen:
        try:
            yield load_rgb(path, size)[None].astype(np.float32)
        except ImageError:
            continue


def export_targets(model_path: Path, fmt: str, quantizations: list[str], out: Path | None) -> dict[str, Path]:
    """Where each quantization goes: `out` for one (default beside the model, e.g. `pilah-xception-int8.onnx`);
    for several, those default names in the folder `out` (default: the model's)."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not quantizations:
        raise ExportError(f"quantize must be one or more of {', '.join(QUANTIZATIONS)}, got {', '.join(unknown)!r}")
    quantizations = list(dict.fromkeys(quantizations))  # each once, in the order given
    if out is not None and len(quantizations) == 1:
        return {quantizations[0]: out}
    folder = out or model_path.parent
    return {q: folder / f"{model_path.stem}{'' if q == 'fp32' else f'-{q}'}{FORMATS[fmt]}" for q in quantizations}


def export(
    model_path: Path,
    fmt: str,
    quantize: str | list[str] = "fp32",
    out: Path | None = None,
    calibration: list[str | Path] | None = None,
) -> list[Path]:
    """Export `model_path` once per quantization (`export_targets` says where), converting it once for all."""
    import keras

    targets = export_targets(model_path, fmt, [quantize] if isinstance(quantize, str) else list(quantize), out)
    images = calibration_images(calibration or [])
    if "int8" in targets and not images:
        raise ExportError("int8 needs calibration images: --calibration RUN_DIR (its training split) or images")
    metadata = model_metadata(model_path)
    embedding = (metadata.get("open_set") or {}).get("layer")
    keras_model = keras.saving.load_model(model_path)
    size = int(keras_model.input_shape[1])
    for target in targets.values():
        target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        _export_onnx(inference_model(keras_model), targets, lambda: calibration_batches(images, size), embedding)
    else:
        _export_tflite(inference_model(keras_model, embedding), targets, lambda: calibration_batches(images, size))
    if "self_check" not in metadata:  # the reference answers are the .keras model's, never the export's own
        reference = selfcheck.reference(Predictor(model_path))
        if reference["photos"]:
            metadata["self_check"] = reference
    source = {"source": model_path.name, "source_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()}
    for quantize, target in targets.items():
        card = dict(metadata, export={"format": fmt, "quantize": quantize, **source})  # the weights it came from
        if embedding:
            card["open_set"] = copy_bank(metadata["open_set"], model_path, target)
        if quantize == "int8":
            card["export"]["calibration_images"] = min(CALIBRATION_IMAGES, len(images))
        if fmt == "onnx" and quantize == "int8":
            card["export"]["int8"] = ONNX_INT8
        write_json(card_path(target), card)
    return list(targets.values())


def _export_onnx(model, targets: dict[str, Path], batches, embedding: str | None) -> None:
    """One conversion to float32 ONNX, then each quantization from it."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        model.export(str(fp32), format="onnx", verbose=False)
        if embedding:  # before quantizing: the pooling stays in float with the head
            graph = onnx.load(str(fp32))
            add_onnx_embedding(graph, embedding)
            onnx.save(graph, str(fp32))
        if "fp16" in targets:
            from onnxruntime.transformers.float16 import convert_float_to_float16

            onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True), str(targets["fp16"]))
        if "int8" in targets:
            _quantize_onnx_int8(fp32, targets["int8"], batches, Path(tmp) / "prepared.onnx")
        if "fp32" in targets:
            fp32.replace(targets["fp32"])


def _quantize_onnx_int8(fp32: Path, out: Path, batches, prepared: Path) -> None:
    import onnx
    from onnxruntime import quantization as q

    q.shape_inference.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared)).graph

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches())

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    q.quantize_static(
        str(prepared),
        str(out),
        Reader(),
        quant_format=q.QuantFormat.QDQ,
        per_channel=True,
        activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
        reduce_range=True,  # 7-bit weights: see ONNX_INT8
        nodes_to_exclude=onnx_preprocess_nodes(graph) + onnx_head_nodes(graph),
    )


def _export_tflite(model, targets: dict[str, Path], batches) -> None:
    """One SavedModel, then one TFLite conversion per quantization."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        for quantize, out in targets.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            if quantize in ("fp16", "int8"):
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "fp16":
                converter.target_spec.supported_types = [tf.float16]
            if quantize == "int8":
                converter.representative_dataset = lambda: ([b] for b in batches())
            out.write_bytes(converter.convert())
