"""ONNX files for tests: the int8 weights of an export, and real copies of the shipped export that answer wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from pilah.inference.export import card_path
from pilah.inference.open_set import bank_path


def _edit(source: Path, target: Path, change) -> Path:
    model = onnx.load(str(source))
    change(model, {i.name: i for i in model.graph.initializer}, {o: n for n in model.graph.node for o in n.output})
    onnx.save(model, str(target))
    shutil.copy(card_path(source), card_path(target))
    if bank_path(source).is_file():  # under the name the card gives it
        shutil.copy(bank_path(source), target.with_name(bank_path(source).name))
    return target


def wrong_on_every_processor(source: Path, target: Path, favoured_class: int = 6) -> Path:
    """The final layer's bias pushed towards one class: every runtime names (nearly) every photo that class."""

    def change(model, initializers, producer):
        softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
        bias = initializers[producer[softmax.input[0]].input[2]]
        values = numpy_helper.to_array(bias).copy()
        values[favoured_class] += 30.0
        bias.CopyFrom(numpy_helper.from_array(values, bias.name))

    return _edit(source, target, change)


def _quantized_layers(model, initializers, producer):
    """(layer node, DequantizeLinear node) for each Conv, Gemm or MatMul whose weights are stored as int8."""
    for node in model.graph.node:
        dequantize = producer.get(node.input[1]) if node.op_type in ("Conv", "Gemm", "MatMul") else None
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        stored = initializers.get(dequantize.input[0])
        if stored is not None and stored.data_type == onnx.TensorProto.INT8:
            yield node, dequantize


def int8_weights(model_file: Path) -> list[np.ndarray]:
    """The int8 weight tensors of the quantized layers."""
    model = onnx.load(str(model_file))
    initializers = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return [
        numpy_helper.to_array(initializers[dequantize.input[0]])
        for _, dequantize in _quantized_layers(model, initializers, producer)
    ]


def full_int8_range(source: Path, target: Path) -> Path:
    """The same dequantized weights stored at twice the integer value and half the scale, i.e. at int8's full
    range, as an export without `reduce_range` stores them: ONNX Runtime's x86 kernels without VNNI saturate on
    it (wrong answers), its VNNI kernels and its float path (`basic` optimisation) do not."""

    def rescale(initializers, dequantize, dtype) -> None:
        values, scale = (numpy_helper.to_array(initializers[dequantize.input[i]]) for i in (0, 1))
        limits = np.iinfo(dtype)
        doubled = np.clip(values.astype(np.int64) * 2, limits.min, limits.max).astype(dtype)
        initializers[dequantize.input[0]].CopyFrom(numpy_helper.from_array(doubled, dequantize.input[0]))
        initializers[dequantize.input[1]].CopyFrom(numpy_helper.from_array(scale / 2, dequantize.input[1]))

    def change(model, initializers, producer):
        for node, dequantize in list(_quantized_layers(model, initializers, producer)):
            rescale(initializers, dequantize, np.int8)
            if len(node.input) > 2 and node.input[2] in producer:  # the int32 bias shares the weight's scale
                rescale(initializers, producer[node.input[2]], np.int32)

    return _edit(source, target, change)
