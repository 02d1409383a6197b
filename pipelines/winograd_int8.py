"""int8 Winograd convolution for the swapper's 3x3 layers (CPU): the int8 swapper's main recipe.

onnxruntime's int8 convolution (QLinearConv) already runs near this CPU's int8 peak, so the only way to make
the int8 swapper faster is fewer multiplications. Winograd's F(2x2, 3x3) (Lavin & Gray, 2016) computes each
2 x 2 block of outputs from a 4 x 4 input tile with 16 multiply-adds per channel pair instead of 36: 2.25x
fewer. Larger tiles (F(4x4)) need a wider range than int8 in the transformed domain; F(2x2) only adds and
subtracts input values, so its transformed tiles keep int8 precision with one scale per tile position.

Per 3x3, stride-1 convolution (`int8_winograd_model`):
1. calibration: the layer's inputs on the calibration faces give the range of every transformed tile
   position (`calibrate`);
2. the weights are transformed once, U = G g G^T, and quantized to int8 per (tile position, output channel);
3. the graph cuts the input into even and odd rows and columns (contiguous blocks, no element-wise gathers) and
   forms V = B^T d B with additions and subtractions, then quantizes each of the 16 positions to uint8 with
   its own scale and zero point;
4. one batched int8 GEMM, M = V U, scaled to float in the same kernel (onnxruntime's MatMulIntegerToFloat);
5. Y = A^T M A (one small MatMul), the 2 x 2 blocks back into place, plus a bias that also holds the
   zero-point correction of step 3, then back to channels first.

On this machine a 1024-channel 32 x 32 layer takes 29.5 ms instead of QLinearConv's 42 ms on one thread (16
against 23 ms on two), with the same order of error against float (relative RMS 2.0% against 1.6% on random
weights). The transforms cost memory traffic, so only wide layers gain (MIN_WIDTH). The whole inswapper
forward: 666 ms instead of 846 on one thread. F(4x2, 3x3) would save another 5 ms a layer, but doubles the
error (3.5-4.4% with the best interpolation points tried); it is not used. `pipelines.quantize` checks the
whole model against fp32 before it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import helper, numpy_helper

from pipelines.winograd import (
    TRANSFORMS,
    ConvLayer,
    add_outputs,
    explicit_padding,
    find_layers,
    open_with_conv_inputs,
    rewrite_layers,
    run_named,
    session_from_bytes,
    transformed_weights,
)

BLOCK = 2  # outputs per tile side: F(2x2, 3x3)
TILE = BLOCK + 2  # inputs per tile side
MIN_WIDTH = 512
"""Smallest harmonic mean of a layer's input and output channels, 2CK / (C + K), for the rewrite. The
transforms cost memory traffic per pixel and channel, the saving grows with C x K per pixel: measured on one
thread, the inswapper's 1024-channel layers take 29 ms instead of 42, its 1024 -> 512 layer 72 instead of
84, but its 512 -> 256 layer at 128 x 128 would take 132 instead of 84, and the 256/128-channel ones twice
as long as QLinearConv."""
MS_DOMAIN = "com.microsoft"

TileRanges = dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]
"""Per rewritten layer (keyed by its output name): the (min, max) of each of its 16 tile positions."""


def eligible_layers(
    model: onnx.ModelProto, min_width: int | None = None, shapes: dict[str, list[int]] | None = None
) -> list[ConvLayer]:
    """The 3x3 stride-1 convolutions with even output sizes and at least `min_width` (default MIN_WIDTH)
    channels, as the harmonic mean of input and output channels. `shapes`: see `find_layers`."""
    min_width = MIN_WIDTH if min_width is None else min_width
    chosen = []
    for layer in find_layers(model, shapes):
        k, c = layer.channels
        out_h = layer.height + layer.pads[0] + layer.pads[2] - 2
        out_w = layer.width + layer.pads[1] + layer.pads[3] - 2
        if out_h % BLOCK == 0 and out_w % BLOCK == 0 and 2 * c * k >= min_width * (c + k):
            chosen.append(layer)
    return chosen


def _padded(x: NDArray[np.float32], pads: tuple[int, int, int, int]) -> NDArray[np.float32]:
    top, left, bottom, right = pads
    return np.pad(x[0], ((0, 0), (top, bottom), (left, right)))


def _row_sums(padded: NDArray[np.float32]) -> tuple[list[NDArray[np.float32]], int]:
    """B^T applied along the rows of every tile: four (C, tiles_y, W) maps; and the tiles per row."""
    b_t, _, _ = TRANSFORMS[BLOCK]
    height, width = padded.shape[1:]
    tiles_y, tiles_x = (height - 2) // BLOCK, (width - 2) // BLOCK
    rows = [padded[:, r : r + BLOCK * tiles_y : BLOCK] for r in range(TILE)]
    sums = [
        sum((float(b_t[i, r]) * rows[r] for r in range(TILE) if b_t[i, r]), np.zeros_like(rows[0])) for i in range(TILE)
    ]
    return sums, tiles_x


def _position(row_sum: NDArray[np.float32], j: int, tiles_x: int) -> NDArray[np.float32]:
    """B^T applied along the columns: tile position (i, j) of every tile, (C, tiles_y, tiles_x)."""
    b_t, _, _ = TRANSFORMS[BLOCK]
    cols = [row_sum[:, :, s : s + BLOCK * tiles_x : BLOCK] for s in range(TILE)]
    return sum((float(b_t[j, s]) * cols[s] for s in range(TILE) if b_t[j, s]), np.zeros_like(cols[0]))


def input_tiles(x: NDArray[np.float32], pads: tuple[int, int, int, int]) -> NDArray[np.float32]:
    """V = B^T d B for every tile of `x` (1, C, H, W) under the layer's zero padding: (16, tiles, C)."""
    row_sums, tiles_x = _row_sums(_padded(x, pads))
    tiles = [_position(row_sum, j, tiles_x) for row_sum in row_sums for j in range(TILE)]
    return np.ascontiguousarray(np.stack(tiles).reshape(TILE * TILE, x.shape[1], -1).transpose(0, 2, 1))


def tile_ranges(
    x: NDArray[np.float32], pads: tuple[int, int, int, int]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(min, max) of each of the 16 tile positions of V, one position at a time (no 4x copy of the input)."""
    row_sums, tiles_x = _row_sums(_padded(x, pads))
    lo, hi = np.empty(TILE * TILE), np.empty(TILE * TILE)
    for i, row_sum in enumerate(row_sums):
        for j in range(TILE):
            values = _position(row_sum, j, tiles_x)
            lo[i * TILE + j], hi[i * TILE + j] = float(values.min()), float(values.max())
    return lo, hi


def calibrate(
    model: onnx.ModelProto, layers: Sequence[ConvLayer], feeds: Sequence[dict[str, np.ndarray]], threads: int = 0
) -> TileRanges:
    """Each layer's tile-position ranges over `feeds`, from one float run of `model` per feed.

    The layers' inputs become extra graph outputs for the run, and are removed again afterwards.
    """
    added = add_outputs(model, [layer.node.input[0] for layer in layers])
    try:
        session = session_from_bytes(model.SerializeToString(), threads)
    finally:
        for _ in added:
            model.graph.output.pop()
    return _ranges(session, _probes(layers), feeds)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate_file` measured: tile ranges per layer, and the shapes of the layers' inputs."""

    ranges: TileRanges
    shapes: dict[str, list[int]]


def calibrate_file(
    path: Path, feeds: Sequence[dict[str, np.ndarray]], min_width: int | None = None, threads: int = 0
) -> Calibration:
    """`calibrate` for the model in `path`, holding the model only once at a time (file, then serialized
    copy, then onnxruntime's session: 0.3-0.5 GB less at the peak for inswapper).

    The input shapes of the convolutions are measured in the first run rather than inferred, so the layers
    are found even when an exporter computes the padding with ops that shape inference cannot follow.
    """
    opened = open_with_conv_inputs(path, threads)
    if opened is None or not feeds:
        return Calibration({}, {})
    session, skeleton, candidates = opened
    first = run_named(session, feeds[0])
    shapes = {name: list(first[name].shape) for name in candidates}
    probes = _probes(eligible_layers(skeleton, min_width, shapes))
    ranges: TileRanges = {}
    _widen(ranges, first, probes)
    del first
    return Calibration(_ranges(session, probes, feeds[1:], ranges), shapes)


Probe = tuple[str, str, tuple[int, int, int, int]]
"""A layer to calibrate: (its input tensor, its output tensor as the key, its zero padding)."""


def _probes(layers: Sequence[ConvLayer]) -> list[Probe]:
    return [(layer.node.input[0], layer.node.output[0], layer.pads) for layer in layers]


def _ranges(
    session: ort.InferenceSession,
    probes: Sequence[Probe],
    feeds: Sequence[dict[str, np.ndarray]],
    ranges: TileRanges | None = None,
) -> TileRanges:
    """`ranges` (or new ones) widened by one run per feed."""
    ranges = {} if ranges is None else ranges
    for feed in feeds:
        _widen(ranges, run_named(session, feed), probes)
    return ranges


def _widen(ranges: TileRanges, values: dict[str, np.ndarray], probes: Sequence[Probe]) -> None:
    for source, key, pads in probes:
        lo, hi = tile_ranges(values[source], pads)
        if key in ranges:
            lo, hi = np.minimum(ranges[key][0], lo), np.maximum(ranges[key][1], hi)
        ranges[key] = (lo, hi)


def _const(name: str, values: NDArray[np.generic]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(values), name)


def int8_winograd_nodes(
    layer: ConvLayer,
    weight: NDArray[np.float32],
    bias: NDArray[np.float32] | None,
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    prefix: str,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and constants that compute `layer` with int8 F(2x2, 3x3), given its tile-position ranges."""
    b_t, _, a_t = TRANSFORMS[BLOCK]
    k, c = layer.channels
    top, left, bottom, right = layer.pads
    height, width = layer.height + top + bottom, layer.width + left + right
    tiles_y, tiles_x = (height - 2) // BLOCK, (width - 2) // BLOCK
    tiles = tiles_y * tiles_x
    name = f"{prefix}_wq"
    # 1. Weights: U per (position, output channel), symmetric int8.
    u = transformed_weights(weight, BLOCK).transpose(0, 2, 1).astype(np.float64)  # (16, C, K)
    w_scale = np.maximum(np.abs(u).max(axis=1, keepdims=True), 1e-12) / 127.0  # (16, 1, K)
    u_q = np.clip(np.rint(u / w_scale), -127, 127).astype(np.int8)
    del u
    # 2. Activations: per position, asymmetric uint8 over the calibrated range (which always holds 0).
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    a_scale = np.maximum(hi - lo, 1e-12) / 255.0  # (16,)
    a_zero = np.clip(np.rint(-lo / a_scale), 0, 255)
    scale = a_scale[:, None, None] * w_scale  # (16, 1, K): the GEMM's int32 results to float
    # The GEMM subtracts one zero point, 128, from every position: sum (q - 128) u = sum (q - z_p) u +
    # (z_p - 128) colsum_p(u). The second term is a constant per (position, channel); through A^T . A it
    # becomes a constant per (output in block, channel), taken off with the bias.
    excess = (a_zero[:, None] - 128.0) * u_q.astype(np.float64).sum(axis=1) * scale[:, 0, :]  # (16, K)
    a_kron = np.kron(a_t, a_t)  # (4, 16)
    out_bias = -(a_kron @ excess)  # (4, K)
    if bias is not None:
        out_bias = out_bias + bias.astype(np.float64)[None, :]
    inits = [
        _const(f"{name}_U", u_q),
        _const(f"{name}_S", scale.astype(np.float32)),
        _const(f"{name}_one", np.array(1.0, np.float32)),
        _const(f"{name}_z128", np.array(128, np.uint8)),
        _const(f"{name}_A", a_kron.astype(np.float32)),
        _const(f"{name}_bias", out_bias.reshape(1, BLOCK, 1, BLOCK, k).astype(np.float32)),
        _const(f"{name}_rows_shape", np.array([tiles_y + 1, 2, width, c], np.int64)),
        _const(f"{name}_cols_shape", np.array([tiles_y, tiles_x + 1, 2, c], np.int64)),
        _const(f"{name}_tile_shape", np.array([1, tiles, c], np.int64)),
        _const(f"{name}_m_shape", np.array([TILE * TILE, tiles * k], np.int64)),
        _const(f"{name}_y_shape", np.array([BLOCK, BLOCK, tiles_y, tiles_x, k], np.int64)),
        _const(f"{name}_out_shape", np.array([1, height - 2, width - 2, k], np.int64)),
        _const(f"{name}_ax01", np.array([0, 1], np.int64)),
        _const(f"{name}_ax12", np.array([1, 2], np.int64)),
    ]
    nodes: list[onnx.NodeProto] = []
    made: set[str] = set()

    def cut(source: str, count: int, axes: str, tag: str) -> list[str]:
        """Input rows (or columns) 2t + r of every tile, r = 0..3, as four contiguous blocks of `count` tiles."""
        parts = []
        for r in range(TILE):
            start, end = f"{name}_{tag}{r}_s", f"{name}_{tag}{r}_e"
            if start not in made:
                made.add(start)
                inits.append(_const(start, np.array([r // 2, r % 2], np.int64)))
                inits.append(_const(end, np.array([r // 2 + count, r % 2 + 1], np.int64)))
            parts.append(f"{source}_{tag}{r}")
            nodes.append(helper.make_node("Slice", [source, start, end, axes], [parts[-1]]))
        return parts

    def combine(parts: list[str], stem: str) -> list[str]:
        """B^T applied along one axis: each row of B^T is one sum or difference of two parts."""
        sums = []
        for i in range(TILE):
            first, second = np.nonzero(b_t[i])[0]
            sums.append(f"{stem}{i}")
            if b_t[i, first] > 0 and b_t[i, second] > 0:
                nodes.append(helper.make_node("Add", [parts[first], parts[second]], [sums[-1]]))
            elif b_t[i, first] > 0:
                nodes.append(helper.make_node("Sub", [parts[first], parts[second]], [sums[-1]]))
            else:
                nodes.append(helper.make_node("Sub", [parts[second], parts[first]], [sums[-1]]))
        return sums

    # 3. The Conv's zero padding made explicit, channels last, then rows as (tile + 1, even/odd, W, C).
    padding_nodes, padding, source = explicit_padding(layer.node.input[0], layer.pads, name)
    nodes.extend(padding_nodes)
    inits.extend(padding)
    nodes.append(helper.make_node("Transpose", [source], [f"{name}_nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", [f"{name}_nhwc", f"{name}_rows_shape"], [f"{name}_pairs"]))
    quantized = []
    for i, row in enumerate(combine(cut(f"{name}_pairs", tiles_y, f"{name}_ax01", "r"), f"{name}_R")):
        nodes.append(helper.make_node("Reshape", [row, f"{name}_cols_shape"], [f"{row}_pairs"]))
        for j, v in enumerate(combine(cut(f"{row}_pairs", tiles_x, f"{name}_ax12", "c"), f"{row}_V")):
            p = i * TILE + j
            inits.append(_const(f"{name}_as{p}", np.array(a_scale[p], np.float32)))
            inits.append(_const(f"{name}_az{p}", np.array(a_zero[p], np.uint8)))
            nodes.append(helper.make_node("QuantizeLinear", [v, f"{name}_as{p}", f"{name}_az{p}"], [f"{v}_q"]))
            nodes.append(helper.make_node("Reshape", [f"{v}_q", f"{name}_tile_shape"], [f"{v}_q3"]))
            quantized.append(f"{v}_q3")
    nodes.append(helper.make_node("Concat", quantized, [f"{name}_vq"], axis=0))  # (16, T, C) uint8
    # 4. M = V U for every position at once, in int8, scaled to float by the GEMM itself.
    nodes.append(
        helper.make_node(
            "MatMulIntegerToFloat",
            [f"{name}_vq", f"{name}_U", f"{name}_one", f"{name}_S", f"{name}_z128"],
            [f"{name}_m"],
            domain=MS_DOMAIN,
        )
    )
    # 5. Y = A^T M A, blocks into place (channels last), bias, channels first.
    nodes.append(helper.make_node("Reshape", [f"{name}_m", f"{name}_m_shape"], [f"{name}_m_flat"]))
    nodes.append(helper.make_node("MatMul", [f"{name}_A", f"{name}_m_flat"], [f"{name}_y_flat"]))
    nodes.append(helper.make_node("Reshape", [f"{name}_y_flat", f"{name}_y_shape"], [f"{name}_y_blocks"]))
    nodes.append(helper.make_node("Transpose", [f"{name}_y_blocks"], [f"{name}_y_t"], perm=[2, 0, 3, 1, 4]))
    nodes.append(helper.make_node("Add", [f"{name}_y_t", f"{name}_bias"], [f"{name}_y_b"]))
    nodes.append(helper.make_node("Reshape", [f"{name}_y_b", f"{name}_out_shape"], [f"{name}_y_nhwc"]))
    nodes.append(helper.make_node("Transpose", [f"{name}_y_nhwc"], [layer.node.output[0]], perm=[0, 3, 1, 2]))
    for index, node in enumerate(nodes):
        node.name = f"{name}_{index}"
    return nodes, inits


def int8_winograd_model(
    model: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]] = (),
    in_place: bool = False,
    min_width: int | None = None,
    calibration: Calibration | None = None,
) -> tuple[onnx.ModelProto, int]:
    """`model` with its eligible 3x3 convolutions in int8 Winograd form, and how many.

    The tile ranges and input shapes come from `calibration` (see `calibrate_file`); without it, the shapes
    are inferred and the ranges calibrated here on `feeds`.
    """
    layers = eligible_layers(model, min_width, calibration.shapes if calibration is not None else None)
    if not layers:
        return model, 0
    ranges = calibration.ranges if calibration is not None else calibrate(model, layers, feeds)
    missing = [layer.node.output[0] for layer in layers if layer.node.output[0] not in ranges]
    if missing:
        raise ValueError(f"no calibrated range for {', '.join(missing)}")

    def build(
        layer: ConvLayer, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, prefix: str
    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        lo, hi = ranges[layer.node.output[0]]
        return int8_winograd_nodes(layer, weight, bias, lo, hi, prefix)

    out = rewrite_layers(model, layers, build, in_place)
    if not any(opset.domain == MS_DOMAIN for opset in out.opset_import):
        out.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return out, len(layers)
