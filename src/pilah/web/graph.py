"""The model's graph as the page runs it: the shipped file, with its quantized pixel scaling (if it has one) replaced
by a table of what native ONNX Runtime computes there.

Why: ONNX Runtime fuses a quantized add into a kernel of its own, and the native and the WebAssembly kernels round
differently (with the shipped int8 file, a fifth of the scaled pixels one step apart). The pixel scaling is the graph's
first node, so that one step at the input spread through every layer and changed 3.5 % of the grades. The other
quantized adds (the residual ones) round apart only rarely (a few values in 100,000), so with the table the page's
answers are Python's within 0.00003 (`tests/web/test_site.py`). The pixels are whole numbers
from 0 to 255, so a 256-value table of native ONNX Runtime's answers is exact for every photo. An export that keeps
the pixel scaling in float (`pilah export` since 2026-12-05) has nothing to replace and is used as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pilah.errors import UsageError

SCALING_NODES = ("QuantizeLinear", "DequantizeLinear", "Mul", "Add")  # what a quantized pixel scaling is made of
PIXEL_VALUES = 256


def page_graph(model: Path) -> bytes:
    """The graph the page loads (serialized ONNX)."""
    onnx = _onnx()
    graph_model = onnx.load(str(model))
    graph = graph_model.graph
    scaling = _quantized_scaling(graph)
    if not scaling:
        return model.read_bytes()
    image, scaled = graph.input[0].name, scaling[-1].output[0]
    table = _native_table(graph_model, image, scaled)
    for node in scaling:
        graph.node.remove(node)
    index = f"{scaled}/pixel_index"
    graph.initializer.append(onnx.numpy_helper.from_array(table, f"{scaled}/native_table"))
    graph.node.insert(0, onnx.helper.make_node("Cast", [image], [index], to=onnx.TensorProto.INT32))
    graph.node.insert(1, onnx.helper.make_node("Gather", [f"{scaled}/native_table", index], [scaled], axis=0))
    _drop_unread(graph)
    return graph_model.SerializeToString()


def _onnx():
    try:
        import onnx
        import onnx.numpy_helper
        import onnx.utils
    except ImportError as error:
        raise UsageError("pilah web build needs the onnx package: pip install 'pilah[web]'") from error
    return onnx


def _quantized_scaling(graph) -> list:
    """The nodes from the graph's input through the last quantize of its pixel scaling; none when it is float."""
    chain, tensor = [], graph.input[0].name
    while True:
        readers = [node for node in graph.node if tensor in node.input]
        if len(readers) != 1 or readers[0].op_type not in SCALING_NODES:
            break
        chain.append(readers[0])
        tensor = readers[0].output[0]
    if not chain or chain[0].op_type != "QuantizeLinear":
        return []
    last = max(i for i, node in enumerate(chain) if node.op_type == "QuantizeLinear")
    return chain[: last + 1]


def _native_table(graph_model, image: str, scaled: str) -> np.ndarray:
    """What native ONNX Runtime (graph optimisation all, as `OnnxRunner`) makes of each pixel value."""
    import onnxruntime

    onnx = _onnx()
    graph = graph_model.graph
    graph.value_info.append(onnx.helper.make_tensor_value_info(scaled, onnx.TensorProto.UINT8, None))
    part = onnx.utils.Extractor(graph_model).extract_model([image], [scaled])
    graph.value_info.pop()
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(part.SerializeToString(), options, providers=["CPUExecutionProvider"])
    shape = [dim.dim_value or 1 for dim in graph.input[0].type.tensor_type.shape.dim]
    values = np.arange(int(np.prod(shape))) % PIXEL_VALUES  # every value in every channel
    found = session.run([scaled], {image: values.astype(np.float32).reshape(shape)})[0].reshape(-1)
    table = found[:PIXEL_VALUES]
    if not np.array_equal(found, table[values]):  # not one function of the pixel value (per-channel scales)
        raise UsageError("the model's pixel scaling differs between channels; the page cannot run it exactly")
    return table


def _drop_unread(graph) -> None:
    """Remove the nodes and constants that nothing reads any more (the replaced nodes' constants)."""
    while True:
        read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        unread = [node for node in graph.node if not read.intersection(node.output)]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    for constant in [constant for constant in graph.initializer if constant.name not in read]:
        graph.initializer.remove(constant)
