"""ONNX files for tests: the int8 weights of an export, real copies of the shipped export that answer wrong, and a
minimal int8 file that answers wrong on processors without VNNI only."""

from __future__ import annotations

import json
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


def saturates_without_vnni(target: Path, classes: list[str], size: int = 32) -> Path:
    """A minimal int8 classifier (one quantized MatMul over the pixels) that ONNX Runtime's x86 kernels without
    VNNI get wrong and its float path (`basic` optimisation) and its VNNI kernels get right, as an export stored at
    int8's full range (without `reduce_range`). Without VNNI the kernel sums two uint8 x int8 products in int16:
    class 0's weights (127) overflow it on bright pixels (255 x 127 x 2 > 32,767) and are clipped to half, class
    1's (64) never are; class 1's bias lies between the two, so every bright photo is class 0 computed exactly and
    class 1 computed there. Its card has no reference answers yet."""
    pixels = size * size * 3
    gap = 0.001  # one unit of a product sum, in logits: the exact sums lie about 8 logits either side of class 1
    pixel_scale = 0.02  # every pixel value over 5 is 255 once quantized: photos are bright to the kernel
    weights = np.zeros((pixels, len(classes)), np.int8)
    weights[:, 0], weights[:, 1] = 127, 64
    bias = np.full(len(classes), -20.0, np.float32)
    bias[0], bias[1] = 0.0, gap * 8064  # half-way between class 0 exact (32,385 a pair) and clipped (16,384)
    constants = {
        "shape": np.array([-1, pixels], np.int64),
        "pixel_scale": np.array(pixel_scale, np.float32),
        "pixel_zero": np.array(0, np.uint8),
        "weights": weights,
        "weight_scale": np.array(gap / (pixel_scale * pixels), np.float32),
        "weight_zero": np.array(0, np.int8),
        "score_scale": np.array(0.25, np.float32),
        "score_zero": np.array(0, np.uint8),
        "bias": bias,
    }
    node = onnx.helper.make_node
    nodes = [
        node("Reshape", ["images", "shape"], ["flat"]),
        node("QuantizeLinear", ["flat", "pixel_scale", "pixel_zero"], ["flat_q"]),
        node("DequantizeLinear", ["flat_q", "pixel_scale", "pixel_zero"], ["flat_dq"]),
        node("DequantizeLinear", ["weights", "weight_scale", "weight_zero"], ["weights_dq"]),
        node("MatMul", ["flat_dq", "weights_dq"], ["scores"]),  # with the Q/DQ pair after it: QLinearMatMul
        node("QuantizeLinear", ["scores", "score_scale", "score_zero"], ["scores_q"]),
        node("DequantizeLinear", ["scores_q", "score_scale", "score_zero"], ["scores_dq"]),
        node("Add", ["scores_dq", "bias"], ["logits"]),
        node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    float_tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        nodes,
        "saturates_without_vnni",
        [float_tensor("images", onnx.TensorProto.FLOAT, ["batch", size, size, 3])],
        [float_tensor("probabilities", onnx.TensorProto.FLOAT, ["batch", len(classes)])],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    card_path(target).write_text(json.dumps({"classes": classes, "name": "saturates-without-vnni"}))
    return target
