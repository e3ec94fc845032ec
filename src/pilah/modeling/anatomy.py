"""The one place that knows how a Pilah model is put together: input -> augmentation -> scaling -> backbone ->
head. Training (the cached mode), export and Grad-CAM take its parts from here instead of guessing."""

from __future__ import annotations

import re

import keras

from pilah.modeling.xception import AUGMENTATION, PREPROCESS

EMBEDDING = "embedding"  # the name of the pooled features a model puts out beside its probabilities


def backbone_of(model: keras.Model) -> keras.Model:
    """The backbone: the nested functional model (the augmentation is a nested Sequential)."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != AUGMENTATION)


def head_of(model: keras.Model) -> list[keras.layers.Layer]:
    """The classifier head: the chain of layers after the backbone (pooling, dense, softmax)."""
    return model.layers[model.layers.index(backbone_of(model)) + 1 :]


def inference_model(model: keras.Model, embedding: str | None = None) -> keras.Model:
    """The same layers and weights without the augmentation block (inactive at inference), called once so
    that it can be traced for export; with `embedding`, a second output: that layer's output (of the model or of
    its backbone) averaged over the image, for `inference.open_set`."""
    import numpy as np

    backbone = backbone_of(model)
    inside = embedding is not None and embedding in {layer.name for layer in backbone.layers}
    inputs = keras.Input(model.input_shape[1:], name="image")
    x, tapped = inputs, None
    for layer in model.layers[1:]:
        if layer.name == AUGMENTATION:
            continue
        if layer is backbone and inside:
            tapped, x = keras.Model(backbone.input, [backbone.get_layer(embedding).output, backbone.output])(x)
        else:
            x = layer(x)
        if layer.name == embedding:
            tapped = x
    if embedding is not None and tapped is None:
        raise ValueError(f"the model has no layer {embedding!r}")
    outputs = x
    if tapped is not None:
        if len(tapped.shape) == 4:
            tapped = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(tapped)
        outputs = [x, tapped]
    inference = keras.Model(inputs, outputs, name="pilah_inference")
    inference.predict_on_batch(np.zeros((1, *model.input_shape[1:]), np.float32))
    return inference


def features_and_head(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(image -> the backbone's last feature map, feature map -> probabilities), sharing `model`'s layers."""
    head_layers = head_of(model)
    features = keras.Model(model.inputs, head_layers[0].input, name="features")
    inputs = keras.Input(tuple(head_layers[0].input.shape[1:]))
    x = inputs
    for layer in head_layers:
        x = layer(x)
    return features, keras.Model(inputs, x, name="head")


def boundary_tensors(backbone: keras.Model, fine_tune_at: int) -> list:
    """Tensors that the trainable layers read from the frozen ones: the cached mode keeps exactly these."""
    tail = backbone.layers[fine_tune_at:]
    inside = {id(layer) for layer in tail}
    producer = {id(layer.output): layer for layer in backbone.layers}
    boundary: list = []
    for layer in tail:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        for tensor in inputs:
            if id(producer[id(tensor)]) not in inside and all(tensor is not b for b in boundary):
                boundary.append(tensor)
    return boundary


def boundary_parts(model: keras.Model, fine_tune_at: int) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the boundary tensors, in `split_at_boundary`'s order. A tensor is named by the
    position of its layer in the backbone (stable, unlike Keras's counter-based layer names), so runs that train
    more or fewer layers share whichever frozen outputs they have in common."""
    backbone = backbone_of(model)
    position = {id(layer.output): i for i, layer in enumerate(backbone.layers)}
    return {
        f"layer{position[id(t)]}": tuple(int(d) for d in t.shape[1:]) for t in boundary_tensors(backbone, fine_tune_at)
    }


def split_at_boundary(model: keras.Model, fine_tune_at: int) -> tuple[keras.Model, keras.Model]:
    """(trunk, trainable): trunk maps pixels (0-255, through the model's own scaling layer) to the boundary
    tensors; trainable maps those to class probabilities through the very same tail and head layers as `model`."""
    backbone = backbone_of(model)
    boundary = boundary_tensors(backbone, fine_tune_at)
    frozen = keras.Model(backbone.input, boundary, name="frozen_trunk")
    pixels = keras.Input(model.input_shape[1:], name="image")
    trunk = keras.Model(pixels, frozen(model.get_layer(PREPROCESS)(pixels)), name="trunk")
    tail = keras.Model(boundary, backbone.output, name="trainable_tail")
    inputs = [keras.Input(t.shape[1:], name=f"cached_{i}") for i, t in enumerate(boundary)]
    x = tail(inputs)
    for layer in head_of(model):
        x = layer(x)
    return trunk, keras.Model(inputs, x, name="trainable_part")


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy every weighted layer of `source` into the layer of the same name in `target`."""
    by_name = {layer.name: layer for layer in target.layers}
    by_name.update({layer.name: layer for layer in backbone_of(target).layers})
    for layer in _flat_layers(source):
        if layer.weights:
            by_name[layer.name].set_weights(layer.get_weights())


def _flat_layers(model: keras.Model) -> list[keras.layers.Layer]:
    flat: list[keras.layers.Layer] = []
    for layer in model.layers:
        flat += _flat_layers(layer) if isinstance(layer, keras.Model) else [layer]
    return flat


def onnx_head_nodes(graph) -> list[str]:
    """The nodes of an exported ONNX graph that belong to the head: each global pooling (of the backbone's last
    feature map, and of the embedding layer) and everything after it. Kept in float by int8 export: they cost
    almost nothing, and a quantized softmax would round every probability to a step of 1/255."""
    pooling = [node for node in graph.node if node.op_type == "GlobalAveragePool"]
    head, frontier = [node.name for node in pooling], {name for node in pooling for name in node.output}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node not in pooling and frontier.intersection(node.input):
            head.append(node.name)
            frontier.update(node.output)
    return head


def onnx_layer_nodes(graph, layer: str) -> list:
    """The nodes an exported ONNX graph holds for one Keras layer (its name scope, `.../add_9_1/Add`)."""
    scope = re.compile(rf"/{re.escape(layer)}(_\d+)?/")
    return [node for node in graph.node if scope.search(node.name)]


def onnx_preprocess_nodes(graph) -> list[str]:
    """The nodes that scale the pixels (a multiply and an add). Kept in float by int8 export: the pixels are whole
    numbers, so float scaling is exact, while ONNX Runtime fuses a quantized add into kernels that round
    differently on each processor and in WebAssembly (one pixel value in five one step apart, then every layer)."""
    return [node.name for node in onnx_layer_nodes(graph, PREPROCESS)]


def add_onnx_embedding(model, layer: str) -> None:
    """Give an exported ONNX graph a second output `embedding`: the named Keras layer's output averaged over the
    image (as `inference_model(..., embedding=layer)`). The layer's tensor is the output of the last node in its
    scope (`.../add_9_1/Add`); in a quantized graph, as the next layers read it (after its quantize-dequantize
    pair). The graph's weights and first output do not change."""
    from onnx import helper

    graph = model.graph
    nodes = onnx_layer_nodes(graph, layer)
    if not nodes:
        raise ValueError(f"the ONNX graph has no node of layer {layer!r}")
    pooling = [node for node in nodes if node.op_type == "GlobalAveragePool"]
    if pooling:  # the layer is a pooling already (the head's avg_pool): its output as it is
        graph.node.append(helper.make_node("Flatten", pooling[0].output, [EMBEDDING], name=f"{EMBEDDING}/flatten"))
        graph.output.append(helper.make_tensor_value_info(EMBEDDING, graph.output[0].type.tensor_type.elem_type, None))
        return
    tensor = nodes[-1].output[0]
    readers = {name: node for node in graph.node for name in node.input}
    quantize = readers.get(tensor)
    if quantize is not None and quantize.op_type == "QuantizeLinear":
        dequantize = readers.get(quantize.output[0])
        if dequantize is not None and dequantize.op_type == "DequantizeLinear":
            tensor = dequantize.output[0]
    pooled = f"{EMBEDDING}_pooled"
    graph.node.extend(
        [
            helper.make_node("GlobalAveragePool", [tensor], [pooled], name=f"{EMBEDDING}/pool"),
            helper.make_node("Flatten", [pooled], [EMBEDDING], name=f"{EMBEDDING}/flatten", axis=1),
        ]
    )
    graph.output.append(helper.make_tensor_value_info(EMBEDDING, graph.output[0].type.tensor_type.elem_type, None))
