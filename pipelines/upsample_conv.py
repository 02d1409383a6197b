"""An x2 upsampling followed by a 3x3 convolution, as one convolution of the SMALL map (CPU graph rewrite).

The swapper's decoder twice upsamples its feature map (Resize, linear, x2) and convolves the 4x larger map
(1024 -> 512 channels at 64 px, then 512 -> 256 at 128 px: 39 G multiply-adds together). Both steps are linear,
and away from the border their composition is shift-invariant with period 2: an output pixel of phase
(py, px) (its row and column parity) is a 3x3 convolution of the small map whose kernel mixes the layer's
kernel with the interpolation weights. So the pair becomes:

1. one 3x3 convolution of the edge-padded small map with 4x the output channels (one kernel per phase), then
   DepthToSpace: the same multiply-adds, but the 4x larger upsampled map is never built, and the new layer is
   wide enough for int8 Winograd (F(4x4) for the first decoder layer, F(2x2) for the second);
2. a correction of the outermost output rows and columns. There the original convolution reads the zero
   padding around the upsampled map, while step 1 reads an edge-extended one. The difference lies on that
   one-pixel ring only, so it is the ring's values (a few small MatMuls of the small map's border rows and
   columns) convolved with the kernel's border taps: four tiny convolutions, written into the border rows
   and columns with ScatterND.

Everything is derived numerically from onnxruntime's own Resize (whatever its attributes), and every rewritten
layer is checked against the original on random input before it is kept: a Resize whose interpolation is not
period-2 shift-invariant (e.g. align_corners) is left as it is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from pipelines.winograd import constant, cpu_session, default_opset, find_layers

CHECK_TOLERANCE = 1e-4  # largest error allowed, relative to the output's largest magnitude (float rounding)
MIN_SIZE = 4  # small maps below this are left alone (no interior to learn the phase kernels from)


@dataclass(frozen=True)
class UpsampleConv:
    """A Resize (x2 in height and width) whose only reader is a 3x3, stride-1, zero-padded Conv."""

    resize: onnx.NodeProto
    conv: onnx.NodeProto
    channels: int  # C, the small map's channels
    size: int  # n: the small map is n x n, the output 2n x 2n


# 1. The interpolation as a matrix ---------------------------------------------------------------------------


def interpolation_matrix(resize: onnx.NodeProto, n: int, opset: int) -> NDArray[np.float64]:
    """The (2n x n) matrix of `resize` along one axis, measured by running it on one-hot rows (onnxruntime)."""
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"])
    node.attribute.extend(resize.attribute)
    graph = helper.make_graph(
        [node],
        "interp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, 1, n, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, 1, 2 * n, 1])],
        [numpy_helper.from_array(np.array([1, 1, 2, 1], np.float32), "scales")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 13))])
    session = cpu_session(model.SerializeToString(), threads=0)
    basis = np.eye(n, dtype=np.float32).reshape(n, 1, n, 1)
    out = np.asarray(session.run(None, {"x": basis})[0], np.float64)
    return out[:, 0, :, 0].T  # column a: what one-hot input a becomes


@dataclass(frozen=True)
class Phases:
    """The interpolation, seen from the edge-padded small map."""

    taps: NDArray[np.float64]  # (2 phases, 3 conv taps, 3 small-map offsets -1..+1): phase kernels' 1-D factors
    first: NDArray[np.float64]  # (n,): the virtual upsampled row -1 (what step 1 reads in the zero padding)
    last: NDArray[np.float64]  # (n,): the virtual upsampled row 2n
    matrix: NDArray[np.float64]  # (2n x n): the interpolation itself


def phases(matrix: NDArray[np.float64]) -> Phases | None:
    """The phase structure of a 2n x n interpolation matrix, or None when it has none (rows must be
    3-tap patterns R_q over x[i-1..i+1] that repeat with period 2, with the border rows clamped)."""
    rows, n = matrix.shape
    if rows != 2 * n or n < MIN_SIZE:
        return None
    middle = n // 2
    pattern = [matrix[2 * middle + q, middle - 1 : middle + 2] for q in (0, 1)]

    def row(m: int) -> NDArray[np.float64]:
        """Upsampled row m (any integer) as the pattern over the edge-clamped small map."""
        i, q = divmod(m, 2)
        out = np.zeros(n)
        for s in range(3):
            out[min(max(i - 1 + s, 0), n - 1)] += pattern[q][s]
        return out

    predicted = np.stack([row(m) for m in range(rows)])
    if not np.allclose(predicted, matrix, atol=1e-6):
        return None
    # Phase p's output row 2i+p reads upsampled rows 2i+p-1 .. 2i+p+1, i.e. small rows i-1 .. i+1 (edge-padded).
    taps = np.zeros((2, 3, 3))
    for p in (0, 1):
        for t in range(3):
            m = 2 * middle + p - 1 + t
            window = row(m)[middle - 1 : middle + 2]
            if not np.isclose(np.abs(row(m)).sum(), np.abs(window).sum()):
                return None  # reads beyond x[i-1 .. i+1]
            taps[p, t] = window
    return Phases(taps, row(-1), row(2 * n), matrix)


# 2. Finding the pairs ---------------------------------------------------------------------------------------


def find_pairs(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> list[UpsampleConv]:
    """The Resize -> Conv pairs to rewrite. `shapes`: the convolutions' input shapes (measured or inferred).

    The Conv is one `find_layers` can rewrite (constant float kernel, stride 1, ...) with zero padding 1 on a
    square map of even side; the Resize is read by it alone and doubles height and width with constant scales.
    """
    inits = {init.name: init for init in model.graph.initializer}
    readers = Counter(name for node in model.graph.node for name in node.input)
    readers.update(output.name for output in model.graph.output)
    producers = {output: node for node in model.graph.node for output in node.output}
    pairs = []
    for layer in find_layers(model, shapes):
        resize = producers.get(layer.node.input[0])
        if resize is None or resize.op_type != "Resize" or resize.domain not in ("", "ai.onnx"):
            continue
        if readers[resize.output[0]] != 1 or layer.pads != (1, 1, 1, 1):
            continue
        if layer.height != layer.width or layer.height % 2:
            continue
        roi = resize.input[1] if len(resize.input) > 1 else ""
        scales = resize.input[2] if len(resize.input) > 2 else ""
        if (roi and roi not in inits) or scales not in inits or (len(resize.input) > 3 and resize.input[3]):
            continue
        if list(numpy_helper.to_array(inits[scales]).astype(float)) != [1.0, 1.0, 2.0, 2.0]:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
        if attrs.get("coordinate_transformation_mode") == b"tf_crop_and_resize":
            continue
        pairs.append(UpsampleConv(resize, layer.node, layer.channels[1], layer.height // 2))
    return pairs


# 3. The replacement nodes -----------------------------------------------------------------------------------


def fused_nodes(
    pair: UpsampleConv,
    interp: Phases,
    weight: NDArray[np.float32],
    bias: NDArray[np.float32] | None,
    prefix: str,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing the Conv's output from the Resize's input (see the module docstring)."""
    x, y = pair.resize.input[0], pair.conv.output[0]
    k, c = weight.shape[:2]
    n = pair.size
    w64 = weight.astype(np.float64)
    name = f"{prefix}_up"
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    # 3.1 One kernel per phase: W_p = T_py^T W T_px (over the small map's offsets), stacked as CRD channels.
    fused = np.einsum("ats,kctv,bvw->kabcsw", interp.taps, w64, interp.taps, optimize=True)  # k, py, px, c, sy, sx
    fused = fused.reshape(k * 4, c, 3, 3)
    inits.append(constant(f"{name}_w", fused.astype(np.float32)))
    conv_inputs = [f"{name}_xe", f"{name}_w"]
    if bias is not None:
        inits.append(constant(f"{name}_b", np.repeat(bias.astype(np.float32), 4)))
        conv_inputs.append(f"{name}_b")
    inits.append(constant(f"{name}_pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    nodes += [
        helper.make_node("Pad", [x, f"{name}_pads"], [f"{name}_xe"], mode="edge"),
        helper.make_node("Conv", conv_inputs, [f"{name}_phases"], kernel_shape=[3, 3], pads=[0, 0, 0, 0]),
        helper.make_node("DepthToSpace", [f"{name}_phases"], [f"{name}_inner"], blocksize=2, mode="CRD"),
    ]
    # 3.2 The ring the original reads as zeros, as rows of 2n + 2 values (corners in the top and bottom rows).
    matrix = interp.matrix
    extended = np.vstack([interp.first, matrix, interp.last])  # (2n + 2) x n: rows -1 .. 2n, edge-clamped
    inner_only = np.vstack([np.zeros(n), matrix, np.zeros(n)])  # the side columns without the corners
    inits += [
        constant(f"{name}_first_row", interp.first[None, :].astype(np.float32)),  # (1, n)
        constant(f"{name}_last_row", interp.last[None, :].astype(np.float32)),
        constant(f"{name}_first_col", interp.first[:, None].astype(np.float32)),  # (n, 1)
        constant(f"{name}_last_col", interp.last[:, None].astype(np.float32)),
        constant(f"{name}_along", extended.T.astype(np.float32)),  # (n, 2n + 2)
        constant(f"{name}_down", inner_only.T.astype(np.float32)),
        constant(f"{name}_row_shape", np.array([1, c, 1, n], np.int64)),
    ]
    # Each side's correction is a 1 x 3 convolution of its ring row with the kernel taps that read it (the
    # left and right columns are handled as rows: their taps are transposed).
    sides = {
        "top": (f"{name}_first_row", "row", f"{name}_along", w64[:, :, 0:1, :]),
        "bottom": (f"{name}_last_row", "row", f"{name}_along", w64[:, :, 2:3, :]),
        "left": (f"{name}_first_col", "col", f"{name}_down", w64[:, :, :, 0:1].transpose(0, 1, 3, 2)),
        "right": (f"{name}_last_col", "col", f"{name}_down", w64[:, :, :, 2:3].transpose(0, 1, 3, 2)),
    }
    for side, (mix, kind, spread, taps) in sides.items():
        line = f"{name}_{side}_line"
        if kind == "row":  # (1, n) @ x -> (1, C, 1, n): the weighted small-map rows
            nodes.append(helper.make_node("MatMul", [mix, x], [line]))
        else:  # x @ (n, 1) -> (1, C, n, 1), viewed as a row
            nodes += [
                helper.make_node("MatMul", [x, mix], [f"{line}_col"]),
                helper.make_node("Reshape", [f"{line}_col", f"{name}_row_shape"], [line]),
            ]
        inits.append(constant(f"{name}_{side}_taps", (-taps).astype(np.float32)))  # subtracted: the ring is 0
        nodes += [
            helper.make_node("MatMul", [line, spread], [f"{name}_{side}_ring"]),  # (1, C, 1, 2n + 2)
            helper.make_node(
                "Conv", [f"{name}_{side}_ring", f"{name}_{side}_taps"], [f"{name}_{side}_fix"], pads=[0, 0, 0, 0]
            ),  # (1, K, 1, 2n)
        ]
    # 3.3 Write the corrected border: first the top and bottom rows, then the side columns (corners get both).
    rows_idx = np.zeros((1, k, 2, 3), np.int64)
    rows_idx[0, :, :, 1] = np.arange(k)[:, None]
    rows_idx[0, :, 1, 2] = 2 * n - 1
    cols_idx = np.zeros((1, k, 2 * n, 2, 4), np.int64)
    cols_idx[0, :, :, :, 1] = np.arange(k)[:, None, None]
    cols_idx[0, :, :, :, 2] = np.arange(2 * n)[None, :, None]
    cols_idx[0, :, :, 1, 3] = 2 * n - 1
    inits += [
        constant(f"{name}_rows_idx", rows_idx),
        constant(f"{name}_cols_idx", cols_idx),
    ]
    nodes += [
        helper.make_node("Concat", [f"{name}_top_fix", f"{name}_bottom_fix"], [f"{name}_rows_fix"], axis=2),
        helper.make_node("GatherND", [f"{name}_inner", f"{name}_rows_idx"], [f"{name}_rows_old"]),  # (1, K, 2, 2n)
        helper.make_node("Add", [f"{name}_rows_old", f"{name}_rows_fix"], [f"{name}_rows_new"]),
        helper.make_node("ScatterND", [f"{name}_inner", f"{name}_rows_idx", f"{name}_rows_new"], [f"{name}_rowed"]),
        helper.make_node("Concat", [f"{name}_left_fix", f"{name}_right_fix"], [f"{name}_cols_fix_t"], axis=2),
        helper.make_node("Transpose", [f"{name}_cols_fix_t"], [f"{name}_cols_fix"], perm=[0, 1, 3, 2]),
        helper.make_node("GatherND", [f"{name}_rowed", f"{name}_cols_idx"], [f"{name}_cols_old"]),  # (1,K,2n,2)
        helper.make_node("Add", [f"{name}_cols_old", f"{name}_cols_fix"], [f"{name}_cols_new"]),
        helper.make_node("ScatterND", [f"{name}_rowed", f"{name}_cols_idx", f"{name}_cols_new"], [y]),
    ]
    return nodes, inits


# 4. The rewrite ---------------------------------------------------------------------------------------------


def _max_error(
    pair: UpsampleConv,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    originals: list[onnx.TensorProto],
    opset: int,
) -> float:
    """The rewritten layer against the original on one random input, relative to the output's largest value."""
    x, y = pair.resize.input[0], pair.conv.output[0]
    c, n = pair.channels, pair.size
    k = next(init.dims[0] for init in originals if init.name == pair.conv.input[1])
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, c, n, n])]
    outputs = [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, k, 2 * n, 2 * n])]
    feed = np.random.default_rng(0).standard_normal((1, c, n, n)).astype(np.float32)
    results = []
    for graph_nodes, graph_inits in (([pair.resize, pair.conv], originals), (nodes, inits)):
        graph = helper.make_graph(graph_nodes, "check", inputs, outputs, graph_inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, 13))])
        session = cpu_session(model.SerializeToString(), threads=0)
        results.append(np.asarray(session.run(None, {x: feed})[0], np.float64))
    scale = float(np.abs(results[0]).max()) or 1.0
    return float(np.abs(results[0] - results[1]).max()) / scale


def _fused_pair(
    pair: UpsampleConv, inits: dict[str, onnx.TensorProto], opset: int, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]] | None:
    """The fused nodes and constants for `pair`, or None when its interpolation has no period-2 structure or the
    rewrite does not match the original (`CHECK_TOLERANCE`)."""
    interp = phases(interpolation_matrix(pair.resize, pair.size, opset))
    if interp is None:
        return None
    bias_name = pair.conv.input[2] if len(pair.conv.input) > 2 and pair.conv.input[2] else None
    weight = numpy_helper.to_array(inits[pair.conv.input[1]]).astype(np.float32)
    bias = numpy_helper.to_array(inits[bias_name]).astype(np.float32) if bias_name else None
    nodes, new_inits = fused_nodes(pair, interp, weight, bias, prefix)
    originals = [inits[name] for name in (*pair.resize.input[1:], *pair.conv.input[1:]) if name]
    if _max_error(pair, nodes, new_inits, originals, opset) > CHECK_TOLERANCE:
        return None
    return nodes, new_inits


def upsample_conv_model(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> tuple[onnx.ModelProto, int]:
    """`model` (changed in place) with every x2-upsample + 3x3-conv pair fused; returns it and how many.

    `shapes`: the convolutions' input shapes (measured, e.g. by `winograd.measured_shapes`, or inferred). A pair whose
    rewrite does not match the original on a random input, or whose Resize onnxruntime cannot run on its own, is
    left as it was. The last initializer stays last (the inswapper's emap matrix is found there).
    """
    pairs = find_pairs(model, shapes)
    if not pairs:
        return model, 0
    opset = default_opset(model)  # (its checks run Resize at opset 13 or later)
    inits = {init.name: init for init in model.graph.initializer}
    replaced: dict[str, tuple[list[onnx.NodeProto], list[onnx.TensorProto]]] = {}
    dropped: set[str] = set()
    for index, pair in enumerate(pairs):
        try:
            fused = _fused_pair(pair, inits, opset, f"upconv{index}")
        except Exception:  # onnxruntime raises several unrelated exception types
            # A Resize that onnxruntime cannot run on its own (e.g. one that needs its roi input): this pair
            # stays as it is, the others are still fused.
            continue
        if fused is None:
            continue
        replaced[pair.resize.output[0]] = fused
        dropped.update(name for name in pair.conv.input[1:] if name)  # its kernel and bias
    if not replaced:
        return model, 0
    convs = {pair.conv.output[0] for pair in pairs if pair.resize.output[0] in replaced}
    old_nodes = list(model.graph.node)
    del model.graph.node[:]
    for node in old_nodes:
        if node.op_type == "Resize" and node.output[0] in replaced:
            model.graph.node.extend(replaced[node.output[0]][0])
        elif not (node.op_type == "Conv" and node.output[0] in convs):
            model.graph.node.append(node)
    # Old kernels out (unless something else still reads them), new constants in, the last one kept last.
    still_read = {name for node in model.graph.node for name in node.input}
    last = model.graph.initializer[-1] if len(model.graph.initializer) else None
    kept = [init for init in model.graph.initializer if init.name not in dropped or init.name in still_read]
    tail = [init for init in kept if last is not None and init.name == last.name]
    body = [init for init in kept if last is None or init.name != last.name]
    for _, new_inits in replaced.values():
        body.extend(new_inits)
    del model.graph.initializer[:]
    model.graph.initializer.extend(body + tail)
    return model, len(replaced)
