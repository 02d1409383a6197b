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

from pipelines.winograd import ConvLayer, conv_layers, explicit_padding, rewrite_layers

MAX_OUTPUTS = 8  # output channels up to which the rewrite pays


def narrow_layers(model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None) -> list[ConvLayer]:
    """The rewritable convolutions (`conv_layers`; `shapes` as there) with a kernel larger than 1x1 and at
    most MAX_OUTPUTS outputs."""
    return [
        layer for layer in conv_layers(model, shapes) if layer.channels[0] <= MAX_OUTPUTS and layer.kernel != (1, 1)
    ]


def narrow_nodes(
    layer: ConvLayer, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and constants computing `layer` as Z = W' x and a sum of shifted slices."""
    top, left, bottom, right = layer.pads
    k, c, kh, kw = weight.shape
    height, width = layer.height + top + bottom, layer.width + left + right
    out_h, out_w = height - kh + 1, width - kw + 1
    name = f"{prefix}_nc"
    taps = np.ascontiguousarray(weight.transpose(2, 3, 0, 1).reshape(kh * kw * k, c), dtype=np.float32)
    nodes, inits, source = explicit_padding(layer.node.input[0], layer.pads, name)
    inits += [
        numpy_helper.from_array(taps, f"{name}_W"),
        numpy_helper.from_array(np.array([c, height * width], np.int64), f"{name}_x_shape"),
        numpy_helper.from_array(np.array([kh * kw, k, height, width], np.int64), f"{name}_z_shape"),
        numpy_helper.from_array(np.array([0, 2, 3], np.int64), f"{name}_axes"),
    ]
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
    nodes.append(helper.make_node("Sum", shifted, [layer.node.output[0]]))
    for index, made in enumerate(nodes):
        made.name = f"{name}_{index}"
    return nodes, inits


def narrow_conv_model(
    model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None
) -> tuple[onnx.ModelProto, int]:
    """`model` (rewritten in place) with its narrow convolutions as GEMM + shifted sums; and how many."""
    layers = narrow_layers(model, shapes)
    if not layers:
        return model, 0
    return rewrite_layers(model, layers, narrow_nodes, in_place=True), len(layers)
