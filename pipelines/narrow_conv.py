"""Convolutions with very few output channels, as one wide GEMM plus shifted sums (CPU, float).

The swapper's last layer maps 128 channels to 3 with a 7 x 7 kernel. Both onnxruntime's float Conv and its
int8 QLinearConv handle it badly: their GEMM has only 3 output columns, so the CPU's vector units stay
mostly idle (40 ms on one thread for 0.34 G multiply-adds, int8). The same sums can be taken the other way
round: first every kernel tap for every pixel, Z = W' x, a GEMM with kh*kw*K = 147 rows that runs near
peak, then the output is the sum of the kh*kw shifted slices of Z. Same arithmetic, same result up to float
rounding.
"""

from __future__ import annotations

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from pipelines.winograd import _static_shapes

MAX_OUTPUTS = 8  # output channels up to which the rewrite pays


def narrow_layers(model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None) -> list[onnx.NodeProto]:
    """Conv nodes with a constant float kernel larger than 1x1, at most MAX_OUTPUTS outputs, stride 1,
    no groups or dilation, and a static input shape (inferred, or from `shapes` measured in a run)."""
    shapes = _static_shapes(model) if shapes is None else shapes
    initializers = {init.name: init for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("group", 1) != 1 or any(s != 1 for s in attrs.get("strides", [1, 1])):
            continue
        if any(d != 1 for d in attrs.get("dilations", [1, 1])) or attrs.get("auto_pad", b"NOTSET") not in (
            b"NOTSET",
            "",
        ):
            continue
        weight = initializers[node.input[1]]
        dims = list(weight.dims)
        if (
            len(dims) != 4
            or dims[0] > MAX_OUTPUTS
            or dims[2] * dims[3] == 1
            or weight.data_type != onnx.TensorProto.FLOAT
        ):
            continue
        shape = shapes.get(node.input[0], [])
        if len(shape) != 4 or shape[0] != 1 or min(shape) <= 0 or shape[1] != dims[1]:
            continue
        if len(node.input) > 2 and node.input[2] and node.input[2] not in initializers:
            continue
        found.append(node)
    return found


def narrow_nodes(
    node: onnx.NodeProto, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, shape: list[int], prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and constants computing `node` (input `shape`) as Z = W' x and a sum of shifted slices."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    top, left, bottom, right = list(attrs.get("pads", [0, 0, 0, 0]))
    k, c, kh, kw = weight.shape
    height, width = shape[2] + top + bottom, shape[3] + left + right
    out_h, out_w = height - kh + 1, width - kw + 1
    name = f"{prefix}_nc"
    taps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1).reshape(kh * kw * k, c), dtype=np.float32)
    inits = [
        numpy_helper.from_array(taps, f"{name}_W"),
        numpy_helper.from_array(np.array([c, height * width], np.int64), f"{name}_x_shape"),
        numpy_helper.from_array(np.array([kh * kw, k, height, width], np.int64), f"{name}_z_shape"),
        numpy_helper.from_array(np.array([0, 2, 3], np.int64), f"{name}_axes"),
    ]
    nodes = []
    source = node.input[0]
    if any((top, left, bottom, right)):
        inits.append(
            numpy_helper.from_array(np.array([0, 0, top, left, 0, 0, bottom, right], np.int64), f"{name}_pads")
        )
        nodes.append(helper.make_node("Pad", [source, f"{name}_pads"], [f"{name}_padded"], mode="constant"))
        source = f"{name}_padded"
    # 1. Every tap of every output channel at every pixel: (kh*kw*K, C) @ (C, H*W).
    nodes.append(helper.make_node("Reshape", [source, f"{name}_x_shape"], [f"{name}_x"]))
    nodes.append(helper.make_node("MatMul", [f"{name}_W", f"{name}_x"], [f"{name}_z_flat"]))
    nodes.append(helper.make_node("Reshape", [f"{name}_z_flat", f"{name}_z_shape"], [f"{name}_z"]))
    # 2. Tap (dy, dx) contributes Z[tap, :, y + dy, x + dx] to output (y, x).
    shifted = []
    for dy in range(kh):
        for dx in range(kw):
            tap = dy * kw + dx
            start, end = f"{name}_s{tap}", f"{name}_e{tap}"
            inits.append(numpy_helper.from_array(np.array([tap, dy, dx], np.int64), start))
            inits.append(numpy_helper.from_array(np.array([tap + 1, dy + out_h, dx + out_w], np.int64), end))
            shifted.append(f"{name}_t{tap}")
            nodes.append(helper.make_node("Slice", [f"{name}_z", start, end, f"{name}_axes"], [shifted[-1]]))
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.reshape(1, k, 1, 1).astype(np.float32), f"{name}_bias"))
        shifted.append(f"{name}_bias")
    nodes.append(helper.make_node("Sum", shifted, [node.output[0]]))
    for index, made in enumerate(nodes):
        made.name = f"{name}_{index}"
    return nodes, inits


def narrow_conv_model(
    model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None
) -> tuple[onnx.ModelProto, int]:
    """`model` (rewritten in place) with its narrow convolutions as GEMM + shifted sums; and how many."""
    shapes = _static_shapes(model) if shapes is None else shapes
    found = narrow_layers(model, shapes)
    if not found:
        return model, 0
    position = {init.name: i for i, init in enumerate(model.graph.initializer)}
    targets = {id(node) for node in found}
    old_nodes = list(model.graph.node)
    del model.graph.node[:]
    for index, node in enumerate(old_nodes):
        if id(node) not in targets:
            model.graph.node.append(node)
            continue
        weight = numpy_helper.to_array(model.graph.initializer[position[node.input[1]]])
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(model.graph.initializer[position[node.input[2]]])
        nodes, inits = narrow_nodes(node, weight, bias, shapes[node.input[0]], f"conv{index}")
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(inits)
    return model, len(found)
