"""Winograd convolution for the swapper's 3x3 layers, as a plain ONNX graph rewrite (CPU, fp32).

onnxruntime's CPU convolution multiplies every 3x3 window directly: 9 multiply-adds per input channel per
output pixel, about 174 G per inswapper face, and on a CPU core it already runs close to the core's peak.
Winograd's minimal filtering (Lavin & Gray, 2016) computes an m x m block of outputs from an (m+2) x (m+2)
input tile with (m+2)^2 multiply-adds per channel pair instead of 9 m^2: 2.25x fewer for F(2x2, 3x3) and 4x
fewer for F(4x4, 3x3). It is the same linear map, so the result is the original's up to float rounding
(`pipelines.fast_fp32` checks it against the original before it is used).

Per 3x3, stride-1 convolution with static shapes (`winograd_model`):
1. the weights are transformed once, U = G g G^T, and stored as one (m+2)^2 x C x K tensor;
2. the graph cuts the padded input into overlapping tiles with strided slices, V = B^T d B (one MatMul);
3. one batched MatMul per tile position, M = V U, does almost all of the work (sgemm, near peak);
4. Y = A^T M A (one MatMul), a transpose puts the m x m blocks back into the map, then the bias.

The transformed weights are (m+2)^2 / 9 times larger (4x for F(4x4)), so each layer takes the largest tile
whose weights stay under a size budget. With the default budget every inswapper layer uses F(4x4, 3x3): the
model grows from 554 MB to 2.0 GB, and one forward on one core takes 1.77 s instead of 3.14 s (this
machine; outputs within 3e-6 of the original's).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import helper, numpy_helper, shape_inference

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

# Lavin & Gray's matrices for cross-correlation (what ONNX Conv computes): Y = A^T [(G g G^T) * (B^T d B)] A.
_F2 = (
    np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),  # B^T
    np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),  # G
    np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),  # A^T
)
_F4 = (
    np.array(
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        np.float64,
    ),
    np.array(
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        np.float64,
    ),
    np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64),
)
TRANSFORMS = {2: _F2, 4: _F4}

MAX_LAYER_WEIGHT_BYTES = 160 * 2**20
"""Largest transformed weight tensor a layer may have (the inswapper's largest F(4x4) layer, 1024 x 1024
channels, takes 144 MiB); a layer whose F(4x4) weights would be larger uses F(2x2), and one whose F(2x2)
weights would be larger stays a plain Conv."""


@dataclass(frozen=True)
class ConvLayer:
    """A plain stride-1 Conv that can be rewritten: its node, weight shape, padding and static input shape.

    The weights themselves are read from the model only when the layer is rewritten (`winograd_model`), so
    a large model is never held twice in memory.
    """

    node: onnx.NodeProto
    channels: tuple[int, int]  # (K outputs, C inputs)
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    height: int  # input height and width before the node's own padding
    width: int
    kernel: tuple[int, int] = (3, 3)  # kernel height and width


def transformed_weights(weight: NDArray[np.float32], m: int) -> NDArray[np.float32]:
    """U = G g G^T for every (output, input) channel pair, as ((m+2)^2, K, C)."""
    _, g_matrix, _ = TRANSFORMS[m]
    k, c = weight.shape[:2]
    a = m + 2
    # kron(G, G) @ vec(g) for all K*C kernels at once, in float64 (exact enough to not add rounding).
    flat = weight.reshape(k * c, 9).astype(np.float64) @ np.kron(g_matrix, g_matrix).T  # (K*C, a*a)
    return np.ascontiguousarray(flat.T.reshape(a * a, k, c), dtype=np.float32)


def tile_for(layer: ConvLayer, max_bytes: int = MAX_LAYER_WEIGHT_BYTES) -> int | None:
    """The output block size m (4 or 2) for this layer, or None to leave it alone."""
    k, c = layer.channels
    out_h = layer.height + layer.pads[0] + layer.pads[2] - 2
    out_w = layer.width + layer.pads[1] + layer.pads[3] - 2
    for m in (4, 2):
        if out_h % m == 0 and out_w % m == 0 and (m + 2) ** 2 * k * c * 4 <= max_bytes:
            return m
    return None


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's inferred shape (0 for unknown dimensions).

    Shape inference runs on a copy without the large weights (declared as graph inputs of their shape
    instead): it needs their shapes only, and a copy with them would double the model in memory.
    """
    light = _graph_only(model)
    for init in model.graph.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) > 1024:
            light.graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:  # small ones (shapes, axes) may be read as values
            light.graph.initializer.append(init)
    inferred = shape_inference.infer_shapes(light, data_prop=True)  # data_prop: pads computed from constants
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input]:
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else 0 for d in info.type.tensor_type.shape.dim]
    return shapes


def conv_layers(model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None) -> list[ConvLayer]:
    """Every Conv a rewrite can replace: a constant fp32 4-D kernel (and constant bias, if any), stride 1, no
    dilation, groups or auto padding, and a known static input shape with batch 1.

    The shapes come from ONNX shape inference unless `shapes` (tensor name -> shape, e.g. measured in a run)
    are given. Only the initializers' dims and types are read, so a weight-free skeleton of the model will do.
    """
    shapes = static_shapes(model) if shapes is None else shapes
    initializers = {init.name: init for init in model.graph.initializer}
    layers = []
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
        if len(dims) != 4 or weight.data_type != onnx.TensorProto.FLOAT:
            continue
        shape = shapes.get(node.input[0], [])
        if len(shape) != 4 or shape[0] != 1 or min(shape) <= 0 or shape[1] != dims[1]:
            continue
        if len(node.input) > 2 and node.input[2] and node.input[2] not in initializers:
            continue
        top, left, bottom, right = list(attrs.get("pads", [0, 0, 0, 0]))
        channels, kernel = (dims[0], dims[1]), (dims[2], dims[3])
        layers.append(ConvLayer(node, channels, (top, left, bottom, right), shape[2], shape[3], kernel))
    return layers


def find_layers(model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None) -> list[ConvLayer]:
    """Every `conv_layers` Conv with a 3x3 kernel."""
    return [layer for layer in conv_layers(model, shapes) if layer.kernel == (3, 3)]


def explicit_padding(
    source: str, pads: tuple[int, int, int, int], name: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """A Conv's own zero padding (top, left, bottom, right) as a Pad node: (nodes, constants, padded tensor)."""
    if not any(pads):
        return [], [], source
    top, left, bottom, right = pads
    pad_values = constant(f"{name}_pads", np.array([0, 0, top, left, 0, 0, bottom, right], np.int64))
    node = helper.make_node("Pad", [source, f"{name}_pads"], [f"{name}_padded"], mode="constant")
    return [node], [pad_values], f"{name}_padded"


def add_outputs(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """Make the named tensors graph outputs too; returns those added (appended last, in order)."""
    existing = {output.name for output in model.graph.output}
    added = [name for name in dict.fromkeys(names) if name not in existing]
    for name in added:
        model.graph.output.append(helper.make_empty_tensor_value_info(name))
    return added


def run_named(session: InferenceSession, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One run, every output by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, feed), strict=True))


# Measured shapes ------------------------------------------------------------------------------------------


def _graph_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model`'s nodes, inputs and outputs, without any initializer."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.graph.node.extend(model.graph.node)
    light.graph.input.extend(model.graph.input)
    light.graph.output.extend(model.graph.output)
    return light


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without the weights' data (their names, dims and types stay): a few kB."""
    light = _graph_only(model)
    for init in model.graph.initializer:
        light.graph.initializer.append(onnx.TensorProto(name=init.name, dims=init.dims, data_type=init.data_type))
    return light


def conv_inputs(model: onnx.ModelProto) -> list[str]:
    """The inputs of every Conv with a constant 2-D kernel (the candidates, before any shape is known)."""
    kernels = {init.name for init in model.graph.initializer if len(init.dims) == 4}
    return list(dict.fromkeys(n.input[0] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in kernels))


RANGE_SUFFIXES = ("__min", "__max")
"""`conv_inputs_session(..., ranges=True)`: the outputs `<tensor>__min` and `<tensor>__max`."""


def conv_activations(model: onnx.ModelProto) -> list[str]:
    """The inputs and outputs of every Conv (what int8 quantization of the convolutions needs ranges of)."""
    names = [name for n in model.graph.node if n.op_type == "Conv" for name in (n.input[0], n.output[0])]
    return list(dict.fromkeys(names))


@contextmanager
def conv_inputs_session(
    path: Path, threads: int = 0, ranges: bool = False
) -> Iterator[tuple[InferenceSession, onnx.ModelProto, list[str]] | None]:
    """A float session of the model in `path` that also outputs the input of every Conv with a constant
    kernel; its weight-free skeleton; and those input names. None when it has no such Conv.

    With `ranges`, it also outputs the min and max of every Conv's input and output (`RANGE_SUFFIXES`;
    scalars, computed in the graph).
    The changed model is saved tensor by tensor into a temporary folder beside `path` and the session opened
    from there: onnxruntime then maps the weights from the file instead of copying a serialized model, which
    takes about 1 GB less at the peak for inswapper (a folder beside the model, not the system's temporary
    folder, which may live in memory). The folder goes when the session is done with.
    """
    model = onnx.load(str(path))
    skeleton = _skeleton(model)
    candidates = conv_inputs(skeleton)
    if not candidates:
        yield None
        return
    add_outputs(model, candidates)
    if ranges:
        for name in conv_activations(skeleton):
            for op, suffix in zip(("ReduceMin", "ReduceMax"), RANGE_SUFFIXES, strict=True):
                model.graph.node.append(helper.make_node(op, [name], [name + suffix], keepdims=0))
                model.graph.output.append(helper.make_empty_tensor_value_info(name + suffix))
    # (Where a mapped file cannot be deleted while mapped, e.g. on Windows, the folder is left behind and
    # removed by the next calibration beside this model.)
    _remove_stale_copies(path.parent)
    with tempfile.TemporaryDirectory(prefix=CALIBRATION_PREFIX, dir=path.parent, ignore_cleanup_errors=True) as folder:
        staged = Path(folder) / "model.onnx"
        onnx.save(model, str(staged), save_as_external_data=True, location="model.onnx.data")
        del model
        release_freed_memory()
        session = cpu_session(staged, threads)
        try:
            yield session, skeleton, candidates
        finally:
            del session
            release_freed_memory()


CALIBRATION_PREFIX = ".calibration-"
STALE_AFTER_S = 3600.0  # a calibration copy this old belongs to no running calibration


def _remove_stale_copies(folder: Path, now: float | None = None) -> None:
    import shutil
    import time

    now = time.time() if now is None else now
    for leftover in folder.glob(CALIBRATION_PREFIX + "*"):
        try:
            if leftover.is_dir() and now - leftover.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def measured_shapes(path: Path, inputs: Sequence[np.ndarray]) -> dict[str, list[int]]:
    """The shapes of the convolutions' inputs in one run of the model on `inputs` (in input order).

    ONNX shape inference cannot follow every exporter (padding computed by ops it does not evaluate); a run
    can. The model is then in memory once at a time, and released before this returns.
    """
    with conv_inputs_session(path, threads=1) as opened:
        if opened is None:
            return {}
        session, _, candidates = opened
        feed = {spec.name: value for spec, value in zip(session.get_inputs(), inputs, strict=True)}
        values = run_named(session, feed)
        shapes = {name: list(values[name].shape) for name in candidates}
        del values, session, opened
    return shapes


def cpu_session(model: bytes | Path, threads: int) -> InferenceSession:
    """A quiet onnxruntime CPU session of a serialized model or a model file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def release_freed_memory() -> None:
    """Give freed heap memory back to the system now (glibc keeps it otherwise), so the next large
    allocation does not come on top of it. Elsewhere nothing to do."""
    import contextlib
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX operator set (0 if it declares none)."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def constant(name: str, values: NDArray[np.generic]) -> onnx.TensorProto:
    """A graph constant (initializer) holding `values`."""
    return numpy_helper.from_array(np.ascontiguousarray(values), name)


def winograd_nodes(
    layer: ConvLayer, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, m: int, prefix: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """The nodes and constants that compute `layer` with F(m x m, 3 x 3).

    The tiles are cut from a channels-last copy of the input, so every slice copies runs of C floats and the
    big multiplication is (T x C) @ (C x K) with the constant weights second (onnxruntime pre-packs those).
    """
    b_t, _, a_t = TRANSFORMS[m]
    a = m + 2
    k, c = layer.channels
    top, left, bottom, right = layer.pads
    out_h, out_w = layer.height + top + bottom - 2, layer.width + left + right - 2
    tiles_y, tiles_x = out_h // m, out_w // m
    tiles = tiles_y * tiles_x
    name = f"{prefix}_wg"
    u_t = np.ascontiguousarray(transformed_weights(weight, m).transpose(0, 2, 1))  # (a*a, C, K)
    inits = [
        constant(f"{name}_U", u_t),
        constant(f"{name}_B", np.kron(b_t, b_t).astype(np.float32)),
        constant(f"{name}_A", np.kron(a_t, a_t).astype(np.float32)),
        constant(f"{name}_step", np.array([m], np.int64)),
        constant(f"{name}_axis0", np.array([0], np.int64)),
        constant(f"{name}_axis1", np.array([1], np.int64)),
        constant(f"{name}_axis2", np.array([2], np.int64)),
        constant(f"{name}_hwc", np.array([layer.height + top + bottom, layer.width + left + right, c], np.int64)),
        constant(f"{name}_d_shape", np.array([a * a, tiles * c], np.int64)),
        constant(f"{name}_v_shape", np.array([a * a, tiles, c], np.int64)),
        constant(f"{name}_m_shape", np.array([a * a, tiles * k], np.int64)),
        constant(f"{name}_y_shape", np.array([m, m, tiles_y, tiles_x, k], np.int64)),
        constant(f"{name}_out_shape", np.array([1, k, out_h, out_w], np.int64)),
    ]
    if bias is not None:
        inits.append(constant(f"{name}_bias", bias.reshape(1, k, 1, 1).astype(np.float32)))
    # 0. The Conv's own zero padding, made explicit; then channels last: (Hp, Wp, C).
    nodes, padding, source = explicit_padding(layer.node.input[0], layer.pads, name)
    inits.extend(padding)
    nodes.append(helper.make_node("Transpose", [source], [f"{name}_nhwc"], perm=[0, 2, 3, 1]))
    nodes.append(helper.make_node("Reshape", [f"{name}_nhwc", f"{name}_hwc"], [f"{name}_hwc_map"]))
    # 1. Overlapping tiles: rows p, p+m, ... for each row offset p in a tile, then the same for the columns.
    rows = []
    for p in range(a):
        rows.append(f"{name}_rows{p}")
        nodes.append(
            helper.make_node(
                "Slice",
                [f"{name}_hwc_map", f"{name}_r{p}_s", f"{name}_r{p}_e", f"{name}_axis0", f"{name}_step"],
                [rows[-1]],
            )
        )
        inits.append(constant(f"{name}_r{p}_s", np.array([p], np.int64)))
        inits.append(constant(f"{name}_r{p}_e", np.array([p + m * tiles_y], np.int64)))
        nodes.append(helper.make_node("Unsqueeze", [rows[-1], f"{name}_axis0"], [f"{rows[-1]}_u"]))
    nodes.append(helper.make_node("Concat", [f"{r}_u" for r in rows], [f"{name}_rows"], axis=0))  # (a, ty, Wp, C)
    cols = []
    for q in range(a):
        cols.append(f"{name}_cols{q}")
        inits.append(constant(f"{name}_c{q}_s", np.array([q], np.int64)))
        inits.append(constant(f"{name}_c{q}_e", np.array([q + m * tiles_x], np.int64)))
        nodes.append(
            helper.make_node(
                "Slice",
                [f"{name}_rows", f"{name}_c{q}_s", f"{name}_c{q}_e", f"{name}_axis2", f"{name}_step"],
                [cols[-1]],
            )
        )
        nodes.append(helper.make_node("Unsqueeze", [cols[-1], f"{name}_axis1"], [f"{cols[-1]}_u"]))
    nodes.append(helper.make_node("Concat", [f"{c_}_u" for c_ in cols], [f"{name}_tiles"], axis=1))  # (a, a, ty, tx, C)
    # 2. V = B^T d B for every tile at once: (a*a, a*a) @ (a*a, T*C).
    nodes.append(helper.make_node("Reshape", [f"{name}_tiles", f"{name}_d_shape"], [f"{name}_d"]))
    nodes.append(helper.make_node("MatMul", [f"{name}_B", f"{name}_d"], [f"{name}_v_flat"]))
    nodes.append(helper.make_node("Reshape", [f"{name}_v_flat", f"{name}_v_shape"], [f"{name}_v"]))
    # 3. One GEMM per position in the tile: (a*a, T, C) @ (a*a, C, K).
    nodes.append(helper.make_node("MatMul", [f"{name}_v", f"{name}_U"], [f"{name}_m"]))
    # 4. Y = A^T M A, then the m x m blocks back into a channels-first map (and the bias).
    nodes.append(helper.make_node("Reshape", [f"{name}_m", f"{name}_m_shape"], [f"{name}_m_flat"]))
    nodes.append(helper.make_node("MatMul", [f"{name}_A", f"{name}_m_flat"], [f"{name}_y_flat"]))
    nodes.append(helper.make_node("Reshape", [f"{name}_y_flat", f"{name}_y_shape"], [f"{name}_y_blocks"]))
    nodes.append(helper.make_node("Transpose", [f"{name}_y_blocks"], [f"{name}_y_t"], perm=[4, 2, 0, 3, 1]))
    output = layer.node.output[0]
    tail = _finish(bias is not None, name, output)
    for i, node in enumerate(nodes):
        node.name = f"{name}_{i}"
    return nodes + tail, inits


def _finish(has_bias: bool, name: str, output: str) -> list[onnx.NodeProto]:
    nodes: list[onnx.NodeProto] = []
    if not has_bias:
        nodes.append(helper.make_node("Reshape", [f"{name}_y_t", f"{name}_out_shape"], [output]))
    else:
        nodes.append(helper.make_node("Reshape", [f"{name}_y_t", f"{name}_out_shape"], [f"{name}_y"]))
        nodes.append(helper.make_node("Add", [f"{name}_y", f"{name}_bias"], [output]))
    for i, node in enumerate(nodes):
        node.name = f"{name}_tail{i}"
    return nodes


def winograd_model(
    model: onnx.ModelProto,
    max_bytes: int = MAX_LAYER_WEIGHT_BYTES,
    in_place: bool = False,
    shapes: dict[str, list[int]] | None = None,
) -> tuple[onnx.ModelProto, int]:
    """`model` with its eligible 3x3 convolutions in Winograd form, and how many were rewritten.

    `in_place` rewrites `model` itself instead of a copy, and drops each original kernel as soon as its
    layer is rewritten: the model is then never held twice in memory. `shapes`: see `find_layers`.
    """
    layers = find_layers(model, shapes)
    chosen = {layer.node.output[0]: (layer, m) for layer in layers if (m := tile_for(layer, max_bytes)) is not None}

    def build(
        layer: ConvLayer, weight: NDArray[np.float32], bias: NDArray[np.float32] | None, prefix: str
    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
        return winograd_nodes(layer, weight, bias, chosen[layer.node.output[0]][1], prefix)

    out = rewrite_layers(model, [layer for layer, _ in chosen.values()], build, in_place)
    return out, len(chosen)


LayerBuilder = Callable[
    [ConvLayer, NDArray[np.float32], "NDArray[np.float32] | None", str],
    tuple[list[onnx.NodeProto], list[onnx.TensorProto]],
]


def rewrite_layers(
    model: onnx.ModelProto, layers: Sequence[ConvLayer], build: LayerBuilder, in_place: bool = False
) -> onnx.ModelProto:
    """`model` with each of `layers` replaced by the nodes `build(layer, weight, bias, prefix)` returns.

    With `in_place`, `model` itself is rewritten and each original kernel is dropped after its last reader,
    so the model is never held twice in memory. The original last initializer stays last (the inswapper's
    emap matrix is found there).
    """
    chosen = {layer.node.output[0]: layer for layer in layers}
    out = model
    if not in_place:
        out = onnx.ModelProto()
        out.CopyFrom(model)
    # 1. How many nodes read each weight: one is dropped after its last reader is rewritten.
    readers = Counter(name for node in out.graph.node for name in node.input)
    readers.update(output.name for output in out.graph.output)
    position = {init.name: i for i, init in enumerate(out.graph.initializer)}
    last = out.graph.initializer[-1].name if len(out.graph.initializer) else None
    old_nodes = list(out.graph.node)
    del out.graph.node[:]
    dropped: set[str] = set()
    for index, node in enumerate(old_nodes):
        layer = chosen.get(node.output[0]) if node.output else None
        if layer is None:
            out.graph.node.append(node)
            continue
        # 2. This layer: its kernel and bias, the new nodes, then the kernel's memory back.
        weight = numpy_helper.to_array(out.graph.initializer[position[node.input[1]]])
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(out.graph.initializer[position[node.input[2]]])
        nodes, inits = build(layer, weight, bias, f"conv{index}")
        del weight
        out.graph.node.extend(nodes)
        for init in inits:
            out.graph.initializer.append(init)
        for name in node.input[1:]:
            readers[name] -= 1
            if name and readers[name] == 0 and name != last:
                emptied = out.graph.initializer[position[name]]
                emptied.ClearField("raw_data")  # its memory back now; the entry itself is removed below
                emptied.ClearField("float_data")
                dropped.add(name)
    # 3. Drop the emptied weights, and keep the original last initializer last.
    for i in reversed(range(len(out.graph.initializer))):
        if out.graph.initializer[i].name in dropped:
            del out.graph.initializer[i]
    if last is not None:
        index = next(i for i, init in enumerate(out.graph.initializer) if init.name == last)
        moved = onnx.TensorProto()
        moved.CopyFrom(out.graph.initializer[index])
        del out.graph.initializer[index]
        out.graph.initializer.append(moved)
    return out
