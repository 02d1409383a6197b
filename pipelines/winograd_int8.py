"""int8 Winograd convolution for the swapper's 3x3 layers (CPU): the int8 swapper's main recipe.

onnxruntime's int8 convolution (QLinearConv) already runs near this CPU's int8 peak, so the only way to make
the int8 swapper faster is fewer multiplications. Winograd's minimal filtering (Lavin & Gray, 2016) computes
an m x m block of outputs from an (m+2) x (m+2) input tile with (m+2)^2 multiply-adds per channel pair
instead of 9 m^2: F(2x2, 3x3) needs 2.25x fewer, F(4x4, 3x3) 4x fewer. The transformed tiles span a wider
range than the input, so each tile position gets its own int8 scale; even so F(4x4) loses more precision
(about 7% relative error per layer against 2% for F(2x2), random weights), so only the widest layers take it
(`block_for`, LARGE_BLOCK).

Per 3x3, stride-1 convolution (`int8_winograd_model`):
1. calibration: the layer's inputs on the calibration faces give the range of every transformed tile
   position (`calibrate`, `calibrate_file`; the same run measures every convolution's input and output
   range for the static quantization of the others);
2. the weights are transformed once, U = G g G^T, and quantized to int8 per (tile position, output channel);
3. V = B^T d B for every tile, each position quantized to uint8 with its own scale and zero point:
   - F(2x2): every row of B^T is a sum or difference of two rows, so V is made from contiguous even/odd
     row and column blocks with additions and subtractions, position by position;
   - F(4x4) (points 0, 1, -1, 2, -1/2): the 6 x 6 tiles are gathered positions first, one slice per tile
     position, and B^T is applied along each axis with one small MatMul;
4. one batched int8 GEMM, M = V U, scaled to float in the same kernel (onnxruntime's MatMulIntegerToFloat);
5. Y = A^T M A, the m x m blocks back into place, plus a bias that also holds the zero-point correction of
   step 3, then back to channels first (`pipelines.channels_last` then keeps the maps between two such layers
   channels last where it can).

Measured on this machine, one thread, a 1024-channel 32 x 32 layer: QLinearConv 42 ms, F(2x2) 29.5-30 ms,
F(4x4) 23-24.5 ms. The transforms cost memory traffic, so only wide layers gain (MIN_WIDTH). The whole
inswapper forward on one thread, three forms in one sitting: 847 ms plain, 668 ms with F(2x2) everywhere,
619 ms with F(4x4) in the style blocks. `pipelines.quantize` checks the whole model against fp32 before it
is used, and falls back to F(2x2) everywhere, then to the plain form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import helper

from pipelines.winograd import (
    RANGE_SUFFIXES,
    TRANSFORMS,
    ConvLayer,
    add_outputs,
    constant,
    conv_inputs_session,
    cpu_session,
    explicit_padding,
    find_layers,
    rewrite_layers,
    run_named,
)

MIN_WIDTH = 512
"""Smallest harmonic mean of a layer's input and output channels, 2CK / (C + K), for the rewrite. The
transforms cost memory traffic per pixel and channel, the saving grows with C x K per pixel: measured on one
thread, the inswapper's 1024-channel layers take 29 ms instead of 42 (F(2x2)), its 1024 -> 512 layer 72
instead of 84, but its 512 -> 256 layer at 128 x 128 would take 132 instead of 84, and the 256/128-channel
ones twice as long as QLinearConv."""
MIN_WIDTH_F4 = 1024
"""Smallest harmonic mean for F(4x4, 3x3) (else F(2x2)); see LARGE_BLOCK."""
LARGE_BLOCK = 4
"""The largest output block: F(4x4, 3x3) takes 36 multiply-adds per 16 outputs instead of F(2x2)'s 16 per 4.
Its transformed tiles span a wider range, so int8 loses more: a 3x3 layer's relative error against float is
about 7% instead of 2% (random weights). Only the widest layers take it: in inswapper, the 12 style-block
convolutions, whose errors are damped by the instance norm after each (extra noise of 4% of their output
RMS costs the output 44 dB PSNR, against 41 dB for the same noise in the 1024 -> 512 decoder layer, which
stays F(2x2)). `pipelines.quantize` checks the whole model and falls back to F(2x2) everywhere."""
F4_POINTS = (0, 1, -1, 2, Fraction(-1, 2))
"""Interpolation points of F(4, 3): with these the int8 layer error is 6.9% against 10.7% for Lavin & Gray's
(0, 1, -1, 2, -2) (simulated on one 256-channel layer; each tile position has its own scale)."""
MS_DOMAIN = "com.microsoft"

TileRanges = dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]
"""Per rewritten layer (keyed by its output name): the (min, max) of each of its (m+2)^2 tile positions."""


def toom_cook(m: int, points: Sequence[Fraction | int]) -> tuple[NDArray[np.float64], ...]:
    """(B^T, G, A^T) of F(m, 3) for cross-correlation, from m + 1 finite points and infinity (exact)."""
    pts = [Fraction(p) for p in points]
    n = m + 2
    if len(pts) != n - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, 3) needs {n - 1} distinct points")

    def product(roots: Sequence[Fraction]) -> list[Fraction]:
        """Coefficients (lowest first) of prod (x - root)."""
        coefficients = [Fraction(1)]
        for root in roots:
            shifted = [Fraction(0), *coefficients]
            for i in range(len(coefficients)):
                shifted[i] -= root * coefficients[i]
            coefficients = shifted
        return coefficients

    a_t = [[p**i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        norm = Fraction(1)
        for q in pts[:j] + pts[j + 1 :]:
            norm *= p - q
        g.append([p**k / norm for k in range(3)])
    g.append([Fraction(0), Fraction(0), Fraction(1)])
    b_t = [product(pts[:j] + pts[j + 1 :]) for j in range(n - 1)] + [product(pts)]
    b_t = [row + [Fraction(0)] * (n - len(row)) for row in b_t]
    return tuple(np.array([[float(v) for v in row] for row in matrix], np.float64) for matrix in (b_t, g, a_t))


INT8_TRANSFORMS = {2: TRANSFORMS[2], 4: toom_cook(4, F4_POINTS)}


def block_for(layer: ConvLayer, min_width: int | None = None, largest: int = LARGE_BLOCK) -> int | None:
    """The output block m (4 or 2, at most `largest`) for a 3x3 layer, or None to leave it as it is."""
    min_width = MIN_WIDTH if min_width is None else min_width
    k, c = layer.channels
    out_h = layer.height + layer.pads[0] + layer.pads[2] - 2
    out_w = layer.width + layer.pads[1] + layer.pads[3] - 2
    width = 2 * c * k / (c + k)
    for m, least in ((4, max(MIN_WIDTH_F4, min_width)), (2, min_width)):
        if m <= largest and width >= least and out_h % m == 0 and out_w % m == 0:
            return m
    return None


def eligible_layers(
    model: onnx.ModelProto,
    min_width: int | None = None,
    shapes: dict[str, list[int]] | None = None,
    largest: int = LARGE_BLOCK,
) -> list[tuple[ConvLayer, int]]:
    """The 3x3 stride-1 convolutions to rewrite, each with its block (`block_for`). `shapes`: see
    `find_layers`."""
    chosen = []
    for layer in find_layers(model, shapes):
        m = block_for(layer, min_width, largest)
        if m is not None:
            chosen.append((layer, m))
    return chosen


def _padded(x: NDArray[np.float32], pads: tuple[int, int, int, int]) -> NDArray[np.float32]:
    top, left, bottom, right = pads
    return np.pad(x[0], ((0, 0), (top, bottom), (left, right)))


def _row_sums(padded: NDArray[np.float32], m: int) -> tuple[list[NDArray[np.float32]], int]:
    """B^T applied along the rows of every tile: m + 2 (C, tiles_y, W) maps; and the tiles per row."""
    b_t = INT8_TRANSFORMS[m][0]
    height, width = padded.shape[1:]
    tiles_y, tiles_x = (height - 2) // m, (width - 2) // m
    rows = [padded[:, r : r + m * tiles_y : m] for r in range(m + 2)]
    sums = [
        sum((float(b_t[i, r]) * rows[r] for r in range(m + 2) if b_t[i, r]), np.zeros_like(rows[0]))
        for i in range(m + 2)
    ]
    return sums, tiles_x


def _position(row_sum: NDArray[np.float32], j: int, tiles_x: int, m: int) -> NDArray[np.float32]:
    """B^T applied along the columns: tile position (i, j) of every tile, (C, tiles_y, tiles_x)."""
    b_t = INT8_TRANSFORMS[m][0]
    cols = [row_sum[:, :, s : s + m * tiles_x : m] for s in range(m + 2)]
    return sum((float(b_t[j, s]) * cols[s] for s in range(m + 2) if b_t[j, s]), np.zeros_like(cols[0]))


def input_tiles(x: NDArray[np.float32], pads: tuple[int, int, int, int], m: int = 2) -> NDArray[np.float32]:
    """V = B^T d B for every tile of `x` (1, C, H, W) under the layer's zero padding: ((m+2)^2, tiles, C)."""
    row_sums, tiles_x = _row_sums(_padded(x, pads), m)
    tiles = [_position(row_sum, j, tiles_x, m) for row_sum in row_sums for j in range(m + 2)]
    return np.ascontiguousarray(np.stack(tiles).reshape((m + 2) ** 2, x.shape[1], -1).transpose(0, 2, 1))


def tile_ranges(
    x: NDArray[np.float32], pads: tuple[int, int, int, int], m: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(min, max) of each tile position of V, one position at a time (no (m+2)^2/m^2 copy of the input)."""
    row_sums, tiles_x = _row_sums(_padded(x, pads), m)
    a = m + 2
    lo, hi = np.empty(a * a), np.empty(a * a)
    for i, row_sum in enumerate(row_sums):
        for j in range(a):
            values = _position(row_sum, j, tiles_x, m)
            lo[i * a + j], hi[i * a + j] = float(values.min()), float(values.max())
    return lo, hi


def calibrate(
    model: onnx.ModelProto,
    layers: Sequence[tuple[ConvLayer, int]],
    feeds: Sequence[dict[str, np.ndarray]],
    threads: int = 0,
) -> TileRanges:
    """Each (layer, block)'s tile-position ranges over `feeds`, from one float run of `model` per feed.

    The layers' inputs become extra graph outputs for the run, and are removed again afterwards.
    """
    added = add_outputs(model, [layer.node.input[0] for layer, _ in layers])
    try:
        session = cpu_session(model.SerializeToString(), threads)
    finally:
        for _ in added:
            model.graph.output.pop()
    return _ranges(session, _probes(layers), feeds)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate_file` measured: tile ranges per layer, and the shapes of the layers' inputs."""

    ranges: TileRanges
    shapes: dict[str, list[int]]
    activations: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(min, max) of every Conv's input and output over the feeds, in float (for the static quantization of
    the convolutions left as they are)."""


def calibrate_file(
    path: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    min_width: int | None = None,
    threads: int = 0,
    largest: int = LARGE_BLOCK,
) -> Calibration:
    """`calibrate` for the model in `path`, holding the model only once at a time (file, then onnxruntime's
    session, which maps the weights from a staged copy on disk: `conv_inputs_session`).

    The input shapes of the convolutions are measured in the first run rather than inferred, so the layers
    are found even when an exporter computes the padding with ops that shape inference cannot follow. The
    layers and their blocks are chosen by `block_for` with `min_width` and `largest` (0: none, only the
    activation ranges are measured).
    """
    if not feeds:
        return Calibration({}, {})
    with conv_inputs_session(path, threads, ranges=True) as opened:
        if opened is None:
            return Calibration({}, {})
        session, skeleton, candidates = opened
        first = run_named(session, feeds[0])
        shapes = {name: list(first[name].shape) for name in candidates}
        probes = _probes(eligible_layers(skeleton, min_width, shapes, largest))
        calibration = Calibration({}, shapes)
        _widen(calibration, first, probes)
        del first
        for feed in feeds[1:]:
            _widen(calibration, run_named(session, feed), probes)
        del session, opened
    return calibration


Probe = tuple[str, str, tuple[int, int, int, int], int]
"""A layer to calibrate: (its input tensor, its output tensor as the key, its zero padding, its block)."""


def _probes(layers: Sequence[tuple[ConvLayer, int]]) -> list[Probe]:
    return [(layer.node.input[0], layer.node.output[0], layer.pads, m) for layer, m in layers]


def _ranges(
    session: ort.InferenceSession, probes: Sequence[Probe], feeds: Sequence[dict[str, np.ndarray]]
) -> TileRanges:
    """Tile ranges over one run per feed."""
    calibration = Calibration({}, {})
    for feed in feeds:
        _widen(calibration, run_named(session, feed), probes)
    return calibration.ranges


def _widen(calibration: Calibration, values: dict[str, np.ndarray], probes: Sequence[Probe]) -> None:
    """Widen the tile ranges, and the activation ranges when the run measured them, by one run's values."""
    ranges = calibration.ranges
    for source, key, pads, m in probes:
        lo, hi = tile_ranges(values[source], pads, m)
        if key in ranges:
            lo, hi = np.minimum(ranges[key][0], lo), np.maximum(ranges[key][1], hi)
        ranges[key] = (lo, hi)
    low, high = RANGE_SUFFIXES
    for name, value in values.items():
        if name.endswith(low):
            tensor = name[: -len(low)]
            least, most = float(value), float(values[tensor + high])
            if tensor in calibration.activations:
                old = calibration.activations[tensor]
                least, most = min(least, old[0]), max(most, old[1])
            calibration.activations[tensor] = (least, most)


@dataclass(frozen=True)
class _Geometry:
    """One layer's sizes: block m, tile side a = m + 2, channels, padded input and tile counts."""

    m: int
    channels: tuple[int, int]  # (K, C)
    height: int  # padded by the Conv's own padding
    width: int

    @property
    def a(self) -> int:
        return self.m + 2

    @property
    def tiles_y(self) -> int:
        return (self.height - 2) // self.m

    @property
    def tiles_x(self) -> int:
        return (self.width - 2) // self.m

    @property
    def tiles(self) -> int:
        return self.tiles_y * self.tiles_x


def _quantized_weights(
    weight: NDArray[np.float32], g_matrix: NDArray[np.float64]
) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """U = G g G^T as int8 (a*a, C, K), symmetric per (position, output channel), and those scales
    (a*a, 1, K). One position at a time: F(4x4)'s 36 positions in float64 at once would take 0.6 GB for a
    1024-channel layer."""
    k, c = weight.shape[:2]
    kernels = weight.reshape(k, c, 9).astype(np.float64)
    kron = np.kron(g_matrix, g_matrix)  # (a*a, 9)
    u_q = np.empty((kron.shape[0], c, k), np.int8)
    w_scale = np.empty((kron.shape[0], 1, k))
    for p, row in enumerate(kron):
        u = (kernels @ row).T  # (C, K)
        w_scale[p, 0] = np.maximum(np.abs(u).max(axis=0), 1e-12) / 127.0
        u_q[p] = np.clip(np.rint(u / w_scale[p]), -127, 127)
    return u_q, w_scale


def int8_winograd_nodes(
    layer: ConvLayer,
    weight: NDArray[np.float32],
    bias: NDArray[np.float32] | None,
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    prefix: str,
    m: int = 2,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and constants that compute `layer` with int8 F(m x m, 3x3), given its tile-position ranges."""
    b_t, g_matrix, a_t = INT8_TRANSFORMS[m]
    top, left, bottom, right = layer.pads
    geo = _Geometry(m, layer.channels, layer.height + top + bottom, layer.width + left + right)
    k = geo.channels[0]
    name = f"{prefix}_wq"
    # 1. Weights: U = G g G^T per (position, output channel), symmetric int8.
    u_q, w_scale = _quantized_weights(weight, g_matrix)
    # 2. Activations: per position, asymmetric uint8 over the calibrated range (which always holds 0).
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    a_scale = np.maximum(hi - lo, 1e-12) / 255.0  # (a*a,)
    a_zero = np.clip(np.rint(-lo / a_scale), 0, 255)
    scale = a_scale[:, None, None] * w_scale  # (a*a, 1, K): the GEMM's int32 results to float
    # The GEMM subtracts one zero point, 128, from every position: sum (q - 128) u = sum (q - z_p) u +
    # (z_p - 128) colsum_p(u). The second term is a constant per (position, channel); through A^T . A it
    # becomes a constant per (output in block, channel), taken off with the bias. (Summed as integers: a float
    # copy of U would take 0.6 GB for the first decoder layer.)
    excess = (a_zero[:, None] - 128.0) * u_q.sum(axis=1, dtype=np.int64) * scale[:, 0, :]  # (a*a, K)
    a_kron = np.kron(a_t, a_t)  # (m*m, a*a)
    out_bias = -(a_kron @ excess)  # (m*m, K)
    if bias is not None:
        out_bias = out_bias + bias.astype(np.float64)[None, :]
    # 3. The Conv's zero padding made explicit (for F(4x4) also m - 2 more zero rows and columns, so the map
    # splits into whole m x m blocks; no tile reads them), then channels last.
    nodes, inits, source = explicit_padding(layer.node.input[0], (top, left, bottom + m - 2, right + m - 2), name)
    nodes.append(helper.make_node("Transpose", [source], [f"{name}_nhwc"], perm=[0, 2, 3, 1]))
    # 4. V = B^T d B for every tile, each position to uint8 with its own scale and zero point: (a*a, T, C).
    if m == 2:
        stage = _pairwise_tiles(f"{name}_nhwc", geo, b_t, a_scale, a_zero, name)
    else:
        stage = _gathered_tiles(f"{name}_nhwc", geo, b_t, a_scale, a_zero, name)
    nodes.extend(stage[0])
    inits.extend(stage[1])
    # 5. M = V U for every position at once, in int8, scaled to float by the GEMM itself.
    inits += [
        constant(f"{name}_U", u_q),
        constant(f"{name}_S", scale.astype(np.float32)),
        constant(f"{name}_one", np.array(1.0, np.float32)),
        constant(f"{name}_z128", np.array(128, np.uint8)),
    ]
    nodes.append(
        helper.make_node(
            "MatMulIntegerToFloat",
            [stage[2], f"{name}_U", f"{name}_one", f"{name}_S", f"{name}_z128"],
            [f"{name}_m"],
            domain=MS_DOMAIN,
        )
    )
    # 6. Y = A^T M A (`_output_transform`), the bias, and the m x m blocks into place, channels first: two
    # transposes that move whole runs of K (blocks into rows), then a plain (HW, K) -> (K, HW) one (a single
    # 5-D transpose straight to channels first takes five times as long).
    inits += [
        constant(f"{name}_bias", out_bias.reshape(m, m, 1, 1, k).astype(np.float32)),
        constant(f"{name}_y_shape", np.array([m, m, geo.tiles_y, geo.tiles_x, k], np.int64)),
        constant(f"{name}_hwk_shape", np.array([m * m * geo.tiles, k], np.int64)),
        constant(f"{name}_out_shape", np.array([1, k, m * geo.tiles_y, m * geo.tiles_x], np.int64)),
    ]
    nodes += [
        *_output_transform(f"{name}_m", f"{name}_y_flat", geo, a_t, inits, name),
        helper.make_node("Reshape", [f"{name}_y_flat", f"{name}_y_shape"], [f"{name}_y_blocks"]),
        helper.make_node("Add", [f"{name}_y_blocks", f"{name}_bias"], [f"{name}_y_b"]),
        helper.make_node("Transpose", [f"{name}_y_b"], [f"{name}_y_t"], perm=[2, 0, 3, 1, 4]),
        helper.make_node("Reshape", [f"{name}_y_t", f"{name}_hwk_shape"], [f"{name}_y_hwk"]),
        helper.make_node("Transpose", [f"{name}_y_hwk"], [f"{name}_y_khw"], perm=[1, 0]),
        helper.make_node("Reshape", [f"{name}_y_khw", f"{name}_out_shape"], [layer.node.output[0]]),
    ]
    for index, node in enumerate(nodes):
        node.name = f"{name}_{index}"
    return nodes, inits


def _output_transform(
    source: str, target: str, geo: _Geometry, a_t: NDArray[np.float64], inits: list[onnx.TensorProto], name: str
) -> list[onnx.NodeProto]:
    """Y = A^T M A for every tile: (a*a, T, K) -> (m*m, T*K). F(2x2): one MatMul with kron(A^T, A^T); F(4x4):
    one A^T per axis (two MatMuls, a third of the multiplications; measured 1 ms a layer faster)."""
    m, a, k = geo.m, geo.a, geo.channels[0]
    if m == 2:
        inits.append(constant(f"{name}_A", np.kron(a_t, a_t).astype(np.float32)))
        inits.append(constant(f"{name}_m_shape", np.array([a * a, geo.tiles * k], np.int64)))
        return [
            helper.make_node("Reshape", [source, f"{name}_m_shape"], [f"{name}_m_flat"]),
            helper.make_node("MatMul", [f"{name}_A", f"{name}_m_flat"], [target]),
        ]
    inits.append(constant(f"{name}_At", a_t.astype(np.float32)))
    inits.append(constant(f"{name}_m_rows", np.array([a, a * geo.tiles * k], np.int64)))
    inits.append(constant(f"{name}_m_cols", np.array([m, a, geo.tiles * k], np.int64)))
    inits.append(constant(f"{name}_y_2d", np.array([m * m, geo.tiles * k], np.int64)))
    return [
        helper.make_node("Reshape", [source, f"{name}_m_rows"], [f"{name}_m_flat"]),
        helper.make_node("MatMul", [f"{name}_At", f"{name}_m_flat"], [f"{name}_y_rows"]),
        helper.make_node("Reshape", [f"{name}_y_rows", f"{name}_m_cols"], [f"{name}_y_cols"]),
        helper.make_node("MatMul", [f"{name}_At", f"{name}_y_cols"], [f"{name}_y_3d"]),
        helper.make_node("Reshape", [f"{name}_y_3d", f"{name}_y_2d"], [target]),
    ]


Stage = tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]
"""Nodes, constants, and the name of the (a*a, T, C) uint8 tensor they make."""


def _pairwise_tiles(
    nhwc: str,
    geo: _Geometry,
    b_t: NDArray[np.float64],
    a_scale: NDArray[np.float64],
    a_zero: NDArray[np.float64],
    name: str,
) -> Stage:
    """F(2x2): every row of B^T is one sum or difference of two input rows, so V is made with additions and
    subtractions of contiguous blocks (the input's even and odd rows, then columns), and each of the 16
    positions is quantized on its own (no float copy of all 16 at once)."""
    c = geo.channels[1]
    a = geo.a
    nodes: list[onnx.NodeProto] = []
    inits = [
        constant(f"{name}_rows_shape", np.array([geo.tiles_y + 1, 2, geo.width, c], np.int64)),
        constant(f"{name}_cols_shape", np.array([geo.tiles_y, geo.tiles_x + 1, 2, c], np.int64)),
        constant(f"{name}_tile_shape", np.array([1, geo.tiles, c], np.int64)),
        constant(f"{name}_ax01", np.array([0, 1], np.int64)),
        constant(f"{name}_ax12", np.array([1, 2], np.int64)),
    ]
    made: set[str] = set()

    def cut(source: str, count: int, axes: str, tag: str) -> list[str]:
        """Input rows (or columns) 2t + r of every tile, r = 0..3, as four contiguous blocks of `count` tiles."""
        parts = []
        for r in range(a):
            start, end = f"{name}_{tag}{r}_s", f"{name}_{tag}{r}_e"
            if start not in made:
                made.add(start)
                inits.append(constant(start, np.array([r // 2, r % 2], np.int64)))
                inits.append(constant(end, np.array([r // 2 + count, r % 2 + 1], np.int64)))
            parts.append(f"{source}_{tag}{r}")
            nodes.append(helper.make_node("Slice", [source, start, end, axes], [parts[-1]]))
        return parts

    def combine(parts: list[str], stem: str) -> list[str]:
        """B^T applied along one axis: each row of B^T is one sum or difference of two parts."""
        sums = []
        for i in range(a):
            first, second = np.nonzero(b_t[i])[0]
            sums.append(f"{stem}{i}")
            if b_t[i, first] > 0 and b_t[i, second] > 0:
                nodes.append(helper.make_node("Add", [parts[first], parts[second]], [sums[-1]]))
            elif b_t[i, first] > 0:
                nodes.append(helper.make_node("Sub", [parts[first], parts[second]], [sums[-1]]))
            else:
                nodes.append(helper.make_node("Sub", [parts[second], parts[first]], [sums[-1]]))
        return sums

    nodes.append(helper.make_node("Reshape", [nhwc, f"{name}_rows_shape"], [f"{name}_pairs"]))
    quantized = []
    for i, row in enumerate(combine(cut(f"{name}_pairs", geo.tiles_y, f"{name}_ax01", "r"), f"{name}_R")):
        nodes.append(helper.make_node("Reshape", [row, f"{name}_cols_shape"], [f"{row}_pairs"]))
        for j, v in enumerate(combine(cut(f"{row}_pairs", geo.tiles_x, f"{name}_ax12", "c"), f"{row}_V")):
            p = i * a + j
            inits.append(constant(f"{name}_as{p}", np.array(a_scale[p], np.float32)))
            inits.append(constant(f"{name}_az{p}", np.array(a_zero[p], np.uint8)))
            nodes.append(helper.make_node("QuantizeLinear", [v, f"{name}_as{p}", f"{name}_az{p}"], [f"{v}_q"]))
            nodes.append(helper.make_node("Reshape", [f"{v}_q", f"{name}_tile_shape"], [f"{v}_q3"]))
            quantized.append(f"{v}_q3")
    nodes.append(helper.make_node("Concat", quantized, [f"{name}_vq"], axis=0))
    return nodes, inits, f"{name}_vq"


def _gathered_tiles(
    nhwc: str,
    geo: _Geometry,
    b_t: NDArray[np.float64],
    a_scale: NDArray[np.float64],
    a_zero: NDArray[np.float64],
    name: str,
) -> Stage:
    """Any m (here F(4x4), whose B^T rows have up to five weights): the tiles are gathered positions first,
    and V = B^T d B is two small MatMuls, one B^T per axis; one QuantizeLinear with a scale per position."""
    m, a, c = geo.m, geo.a, geo.channels[1]
    ty, tx = geo.tiles_y, geo.tiles_x
    inits = [
        constant(f"{name}_blocks_shape", np.array([ty + 1, m, tx + 1, m, c], np.int64)),
        constant(f"{name}_d_shape", np.array([a * a, geo.tiles * c], np.int64)),
        constant(f"{name}_v_shape", np.array([a * a, geo.tiles, c], np.int64)),
        constant(f"{name}_Bt", b_t.astype(np.float32)),
        constant(f"{name}_rows_shape", np.array([a, a * geo.tiles * c], np.int64)),
        constant(f"{name}_cols_shape", np.array([a, a, geo.tiles * c], np.int64)),
        constant(f"{name}_as", a_scale.astype(np.float32)),
        constant(f"{name}_az", a_zero.astype(np.uint8)),
        constant(f"{name}_entry_shape", np.array([1, geo.tiles * c], np.int64)),
    ]
    blocks = f"{name}_blocks"
    nodes = [helper.make_node("Reshape", [nhwc, f"{name}_blocks_shape"], [blocks])]
    # Row i of tile (y, x) is row m*y + i of the map: row i % m of block y + i // m (likewise for columns). So
    # entry (i, j) of every tile is one slice of the (blocks_y, m, blocks_x, m, C) view, and the a*a slices,
    # stacked, are the tiles with their positions first. (Measured on a 1024-channel 32 x 32 layer, one thread:
    # 1.25 ms, against 3.3 ms for gathering whole tiles from four slices and transposing them.)
    entries = []
    for i in range(a):
        for j in range(a):
            tag = f"{name}_e{i}{j}"
            starts = [i // m, i % m, j // m, j % m]
            inits.append(constant(f"{tag}_s", np.array(starts, np.int64)))
            ends = [starts[0] + ty, starts[1] + 1, starts[2] + tx, starts[3] + 1]
            inits.append(constant(f"{tag}_e", np.array(ends, np.int64)))
            nodes.append(helper.make_node("Slice", [blocks, f"{tag}_s", f"{tag}_e"], [tag]))
            nodes.append(helper.make_node("Reshape", [tag, f"{name}_entry_shape"], [f"{tag}_row"]))
            entries.append(f"{tag}_row")
    nodes += [
        helper.make_node("Concat", entries, [f"{name}_entries"], axis=0),
        helper.make_node("Reshape", [f"{name}_entries", f"{name}_rows_shape"], [f"{name}_d"]),
        helper.make_node("MatMul", [f"{name}_Bt", f"{name}_d"], [f"{name}_vr"]),
        helper.make_node("Reshape", [f"{name}_vr", f"{name}_cols_shape"], [f"{name}_vc"]),
        helper.make_node("MatMul", [f"{name}_Bt", f"{name}_vc"], [f"{name}_v3"]),
        helper.make_node("Reshape", [f"{name}_v3", f"{name}_d_shape"], [f"{name}_v"]),
        helper.make_node("QuantizeLinear", [f"{name}_v", f"{name}_as", f"{name}_az"], [f"{name}_vq2"], axis=0),
        helper.make_node("Reshape", [f"{name}_vq2", f"{name}_v_shape"], [f"{name}_vq"]),
    ]
    return nodes, inits, f"{name}_vq"


def int8_winograd_model(
    model: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]] = (),
    in_place: bool = False,
    min_width: int | None = None,
    calibration: Calibration | None = None,
    largest: int = LARGE_BLOCK,
) -> tuple[onnx.ModelProto, list[int]]:
    """`model` with its eligible 3x3 convolutions in int8 Winograd form, and the block m of each.

    With `calibration` (see `calibrate_file`), the layers it calibrated are rewritten, each with the block its
    tile ranges were measured for; `min_width` and `largest` choose the layers only without it, when the
    shapes are inferred and the ranges calibrated here on `feeds`.
    """
    if calibration is not None:
        ranges = calibration.ranges
        layers = [
            (layer, math.isqrt(len(ranges[layer.node.output[0]][0])) - 2)
            for layer in find_layers(model, calibration.shapes)
            if layer.node.output[0] in ranges
        ]
    else:
        layers = eligible_layers(model, min_width, None, largest)
        ranges = calibrate(model, layers, feeds) if layers else {}
    if not layers:
        return model, []
    blocks = {layer.node.output[0]: m for layer, m in layers}

    def build(
        layer: ConvLayer, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, prefix: str
    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        lo, hi = ranges[layer.node.output[0]]
        return int8_winograd_nodes(layer, weight, bias, lo, hi, prefix, blocks[layer.node.output[0]])

    out = rewrite_layers(model, [layer for layer, _ in layers], build, in_place)
    if not any(opset.domain == MS_DOMAIN for opset in out.opset_import):
        out.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return out, [m for _, m in layers]
