"""Channels-last maps between the int8 Winograd layers (`pipelines.winograd_int8`).

An int8 Winograd layer works on channels-last tiles: it pads its channels-first (C, H, W) input and
transposes it to (H, W, C), and it makes its output as (H*W, K), then transposes it back. In inswapper's
style blocks two such layers follow each other with only per-pixel and per-channel work between them
(instance norm, the style's scale and shift, ReLU, reflection padding, the residual sum), which is as easy
on a channels-last map. There, per 1024-channel 32 x 32 layer on one thread, the two transposes cost about
2.5 ms, and each Pad of the channels-first map about 1 ms against 0.2 ms channels last.

`channels_last_model` gives such maps a channels-last twin, in graph order:
1. the output of a Winograd layer: its (H*W, K) result, reshaped instead of transposed;
2. ReLU, LeakyRelu and other one-input element-wise ops of a twin; Add, Sub, Mul and Div of a twin with a
   map of the same shape (channels-first maps get a twin by one transpose), a per-channel vector or a scalar;
3. InstanceNormalization of a twin: the mean and mean square of each channel as MatMuls of the (H*W, C)
   map with a 1/(H*W) row, the variance as their difference, then BatchNormalization of the (H*W, C) map
   with them (a map of H*W "samples" of C channels); a style's per-channel scale and shift right after it
   (adaptive instance norm) fold into that BatchNormalization;
4. Pad of a twin that pads H and W only (any mode).

Only twins that lead to a Winograd layer's input are kept: that layer reads the twin and its transpose goes.
A map that something else still reads channels first is transposed back from its twin, and whatever nobody
reads any more is dropped. Every new constant is a Constant node: the initializers keep their order (the
inswapper's emap is its last initializer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from pipelines.winograd import default_opset, static_shapes

TO_LAST = [0, 2, 3, 1]
TO_FIRST = [0, 3, 1, 2]
UNARY = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Softplus", "Abs", "Neg"})
BINARY = frozenset({"Add", "Sub", "Mul", "Div"})
PREFIX = "chlast"

Chw = tuple[int, int, int]


def _ints(attribute: object) -> list[int]:
    return [int(v) for v in attribute] if isinstance(attribute, Sequence) else []


@dataclass
class _Twins:
    """The twins made so far: NCHW tensor -> its (1, H, W, C) twin, with the map's (C, H, W)."""

    graph: onnx.GraphProto
    shapes: dict[str, list[int]]
    opset: int
    keep: set[str] | None  # second pass: only these tensors get a twin (those that lead to a Winograd input)
    consts: dict[str, onnx.TensorProto] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    twin: dict[str, str] = field(default_factory=dict)
    chw: dict[str, Chw] = field(default_factory=dict)
    made: dict[int, list[onnx.NodeProto]] = field(default_factory=dict)  # node index -> nodes that replace it
    reads: dict[str, set[str]] = field(default_factory=dict)  # twinned tensor -> twinned tensors its twin reads
    entries: dict[str, str] = field(default_factory=dict)  # dropped NCHW->NHWC Transpose output -> twin
    folds: dict[int, tuple[int, int]] = field(default_factory=dict)  # Add index -> (InstanceNorm, Mul) indices
    folded: set[int] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.consts = {init.name: init for init in self.graph.initializer}
        for node in self.graph.node:
            for output in node.output:
                self.producer[output] = node
            if node.op_type == "Constant" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.consts[node.output[0]] = value
        self.names = {init.name for init in self.graph.initializer} | set(self.producer)
        self.names |= {i.name for i in self.graph.input}
        self.folds = _style_norms(self.graph)
        self.folded = {index for pair in self.folds.values() for index in pair}

    # Helpers -------------------------------------------------------------------------------------------
    def fresh(self, stem: str) -> str:
        name, index = f"{PREFIX}_{stem}", 0
        while name in self.names:
            index += 1
            name = f"{PREFIX}_{stem}_{index}"
        self.names.add(name)
        return name

    def const(self, stem: str, values: np.ndarray, out: list[onnx.NodeProto]) -> str:
        name = self.fresh(stem)
        out.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(values, name)))
        return name

    def value(self, name: str) -> np.ndarray | None:
        tensor = self.consts.get(name)
        return None if tensor is None else numpy_helper.to_array(tensor)

    def shape(self, name: str) -> list[int] | None:
        if name in self.consts:
            return list(self.consts[name].dims)
        shape = self.shapes.get(name)
        return list(shape) if shape and all(d > 0 for d in shape) else None

    def wanted(self, name: str) -> bool:
        return self.keep is None or name in self.keep

    def add(self, index: int, output: str, chw: Chw, nodes: list[onnx.NodeProto], reads: set[str]) -> None:
        twin = nodes[-1].output[0]
        self.twin[output], self.chw[output] = twin, chw
        self.made[index] = nodes
        self.reads[output] = reads

    # Rules ---------------------------------------------------------------------------------------------
    def visit(self, index: int, node: onnx.NodeProto) -> None:
        op = node.op_type
        if op == "Transpose" and node.input[0] in self.twin and _ints(_attr(node, "perm")) == TO_LAST:
            self.entries[node.output[0]] = self.twin[node.input[0]]
            return
        if len(node.output) != 1 or not self.wanted(node.output[0]) or index in self.folded:
            return
        if index in self.folds:
            self.styled_norm(index, node)
        elif op == "Reshape":
            self.winograd_output(index, node)
        elif op in UNARY and node.input[0] in self.twin and len(node.input) == 1:
            self.unary(index, node)
        elif op in BINARY and len(node.input) == 2:
            self.binary(index, node)
        elif op == "InstanceNormalization" and node.input[0] in self.twin and self.opset >= 9:
            self.instance_norm(index, node)
        elif op == "Pad":
            self.pad(index, node)

    def winograd_output(self, index: int, node: onnx.NodeProto) -> None:
        """Reshape(Transpose(X, [1, 0]), [1, K, H, W]) where X is (H*W, K): the twin is X as (1, H, W, K)."""
        target = self.value(node.input[1])
        transpose = self.producer.get(node.input[0])
        if target is None or transpose is None or transpose.op_type != "Transpose":
            return
        if _ints(_attr(transpose, "perm")) != [1, 0]:
            return
        rows = self.producer.get(transpose.input[0])
        rows_shape = self.value(rows.input[1]) if rows is not None and rows.op_type == "Reshape" else None
        if rows_shape is None or rows_shape.shape != (2,) or target.shape != (4,) or target[0] != 1:
            return
        k, h, w = (int(v) for v in target[1:])
        if min(k, h, w) <= 0 or [int(v) for v in rows_shape] != [h * w, k]:
            return
        nodes: list[onnx.NodeProto] = []
        shape = self.const("nhwc_shape", np.array([1, h, w, k], np.int64), nodes)
        nodes.append(helper.make_node("Reshape", [transpose.input[0], shape], [self.fresh("map")]))
        self.add(index, node.output[0], (k, h, w), nodes, set())

    def unary(self, index: int, node: onnx.NodeProto) -> None:
        twin = helper.make_node(node.op_type, [self.twin[node.input[0]]], [self.fresh("map")])
        twin.attribute.extend(node.attribute)
        self.add(index, node.output[0], self.chw[node.input[0]], [twin], {node.input[0]})

    def binary(self, index: int, node: onnx.NodeProto) -> None:
        twinned = [name for name in node.input if name in self.twin]
        if not twinned:
            return
        chw = self.chw[twinned[0]]
        plan = [(name, kind) for name in node.input if (kind := self.operand_kind(name, chw)) is not None]
        if len(plan) != len(node.input):
            return  # (checked before anything is made: a half-made twin must not be left behind)
        nodes: list[onnx.NodeProto] = []
        inputs = [self.operand(name, kind, chw[0], nodes) for name, kind in plan]
        nodes.append(helper.make_node(node.op_type, inputs, [self.fresh("map")]))
        self.add(index, node.output[0], chw, nodes, {name for name in node.input if name in self.twin})

    def operand_kind(self, name: str, chw: Chw) -> str | None:
        """What `name` is beside a channels-last map of `chw` in an element-wise op: "twin" (it has one of the
        same shape), "map" (a channels-first map of that shape), "scalar", "channels" (a per-channel vector),
        or None (none of these)."""
        if name in self.twin:
            return "twin" if self.chw[name] == chw else None
        shape = self.shape(name)
        c, h, w = chw
        if shape is None:
            return None
        if shape == [1, c, h, w]:
            return "map"
        if int(np.prod(shape)) == 1:
            return "scalar"
        return "channels" if shape in ([1, c, 1, 1], [c, 1, 1]) else None

    def operand(self, name: str, kind: str, c: int, nodes: list[onnx.NodeProto]) -> str:
        """`name` made fit for the channels-last op (see `operand_kind`)."""
        if kind == "twin":
            return self.twin[name]
        if kind == "map":
            return self.transposed(name, nodes)
        if kind == "channels":
            last = self.const("channel_shape", np.array([1, 1, 1, c], np.int64), nodes)
            nodes.append(helper.make_node("Reshape", [name, last], [self.fresh("channels")]))
            return nodes[-1].output[0]
        return name  # a scalar

    def transposed(self, name: str, nodes: list[onnx.NodeProto]) -> str:
        """A twin for a channels-first map made elsewhere: its transpose (then read by every later twin)."""
        shape = self.shape(name)
        assert shape is not None and len(shape) == 4
        nodes.append(helper.make_node("Transpose", [name], [self.fresh("map")], perm=TO_LAST))
        self.twin[name], self.chw[name] = nodes[-1].output[0], (shape[1], shape[2], shape[3])
        return self.twin[name]

    def instance_norm(self, index: int, node: onnx.NodeProto) -> None:
        if len(node.input) != 3:
            return
        nodes: list[onnx.NodeProto] = []
        self.normalized(node, node.input[1], node.input[2], nodes)
        self.add(index, node.output[0], self.chw[node.input[0]], nodes, {node.input[0]})

    def styled_norm(self, index: int, node: onnx.NodeProto) -> None:
        """Add(Mul(InstanceNormalization(x), scale), shift) with per-channel scale and shift (the style blocks'
        adaptive instance norm): one BatchNormalization whose scale and bias take the style's in too."""
        norm_index, mul_index = self.folds[index]
        norm, mul = self.graph.node[norm_index], self.graph.node[mul_index]
        if norm.input[0] not in self.twin:
            return
        c = self.chw[norm.input[0]][0]
        style_scale = next(name for name in mul.input if name != norm.output[0])
        style_shift = next(name for name in node.input if name != mul.output[0])
        nodes: list[onnx.NodeProto] = []
        vectors = [self.channel_vector(name, c, nodes) for name in (style_scale, style_shift)]
        if vectors[0] is None or vectors[1] is None:
            return
        scale, shifted, bias = self.fresh("scale"), self.fresh("scaled_bias"), self.fresh("bias")
        nodes += [
            helper.make_node("Mul", [norm.input[1], vectors[0]], [scale]),
            helper.make_node("Mul", [norm.input[2], vectors[0]], [shifted]),
            helper.make_node("Add", [shifted, vectors[1]], [bias]),
        ]
        self.normalized(norm, scale, bias, nodes)
        self.add(index, node.output[0], self.chw[norm.input[0]], nodes, {norm.input[0]})
        self.made[norm_index], self.made[mul_index] = [], []

    def channel_vector(self, name: str, c: int, nodes: list[onnx.NodeProto]) -> str | None:
        """A per-channel (or single) value as a vector of C (or 1), for the BatchNormalization's parameters."""
        shape = self.shape(name)
        if shape is None or name in self.twin:
            return None
        if int(np.prod(shape)) == 1:
            size = 1
        elif shape in ([1, c, 1, 1], [c, 1, 1], [c]):
            size = c
        else:
            return None
        flat = self.const("vector_shape", np.array([size], np.int64), nodes)
        nodes.append(helper.make_node("Reshape", [name, flat], [self.fresh("vector")]))
        return nodes[-1].output[0]

    def normalized(self, norm: onnx.NodeProto, scale: str, bias: str, nodes: list[onnx.NodeProto]) -> None:
        """Instance norm of the twin of `norm`'s input with per-channel `scale` and `bias` (C,), appended to
        `nodes` (the last one makes the normalized twin).

        The mean and the mean square of every channel are MatMuls of the (H*W, C) map with a 1/(H*W) row;
        the variance is their difference (one pass over the map instead of two; float32 sums lose only
        digits far below the int8 layers' noise unless a channel's mean is hundreds of times its spread,
        and such a nearly constant channel is normalized to about zero either way)."""
        c, h, w = self.chw[norm.input[0]]
        epsilon = _attr(norm, "epsilon")
        flat = self.const("flat_shape", np.array([h * w, c], np.int64), nodes)
        vector = self.const("vector_shape", np.array([c], np.int64), nodes)
        average = self.const("average_row", np.full((1, h * w), 1.0 / (h * w), np.float32), nodes)
        back = self.const("nhwc_shape", np.array([1, h, w, c], np.int64), nodes)
        zero = self.const("zero", np.array(0.0, np.float32), nodes)
        x, mean, square, mean_square = (self.fresh(s) for s in ("rows", "mean", "square", "mean_square"))
        mean2, difference, var = self.fresh("mean2"), self.fresh("difference"), self.fresh("var")
        mean_c, var_c, y = self.fresh("mean_c"), self.fresh("var_c"), self.fresh("normed")
        nodes += [
            helper.make_node("Reshape", [self.twin[norm.input[0]], flat], [x]),
            helper.make_node("MatMul", [average, x], [mean]),
            helper.make_node("Mul", [x, x], [square]),
            helper.make_node("MatMul", [average, square], [mean_square]),
            helper.make_node("Mul", [mean, mean], [mean2]),
            helper.make_node("Sub", [mean_square, mean2], [difference]),
            helper.make_node("Max", [difference, zero], [var]),
            helper.make_node("Reshape", [mean, vector], [mean_c]),
            helper.make_node("Reshape", [var, vector], [var_c]),
            helper.make_node(
                "BatchNormalization",
                [x, scale, bias, mean_c, var_c],
                [y],
                epsilon=float(epsilon) if isinstance(epsilon, float) else 1e-5,
            ),
            helper.make_node("Reshape", [y, back], [self.fresh("map")]),
        ]

    def pad(self, index: int, node: onnx.NodeProto) -> None:
        if self.opset >= 11:
            if len(node.input) > 3 and node.input[3]:  # axes (opset 18)
                return
            values = self.value(node.input[1]) if len(node.input) > 1 else None
            pads = [int(v) for v in values] if values is not None else []
        else:
            pads = _ints(_attr(node, "pads"))
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            return
        top, left, bottom, right = pads[2], pads[3], pads[6], pads[7]
        last = [0, top, left, 0, 0, bottom, right, 0]
        nodes: list[onnx.NodeProto] = []
        if node.input[0] not in self.twin:
            # A channels-first map padded for a Winograd layer: transposed before the padding rather than
            # after it (padding channels last is 5x cheaper), and its twin serves any other reader too.
            shape = self.shape(node.input[0])
            if shape is None or len(shape) != 4 or shape[0] != 1:
                return
            self.transposed(node.input[0], nodes)
        c, h, w = self.chw[node.input[0]]
        inputs = [self.twin[node.input[0]]]
        if self.opset >= 11:
            inputs.append(self.const("pads", np.array(last, np.int64), nodes))
            inputs.extend(node.input[2:3])
        twin = helper.make_node("Pad", inputs, [self.fresh("map")])
        twin.attribute.extend(a for a in node.attribute if a.name != "pads")
        if self.opset < 11:
            twin.attribute.append(helper.make_attribute("pads", last))
        nodes.append(twin)
        self.add(index, node.output[0], (c, h + top + bottom, w + left + right), nodes, {node.input[0]})


def _attr(node: onnx.NodeProto, name: str) -> object:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _style_norms(graph: onnx.GraphProto) -> dict[int, tuple[int, int]]:
    """Every Add(Mul(InstanceNormalization(x), a), b) whose norm and product are read by nothing else:
    Add's index -> (the norm's index, the Mul's index). Whether a and b are per channel is checked later."""
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    outputs = {output.name for output in graph.output}

    def only_reader(name: str, op: str) -> int | None:
        found = readers.get(name, [])
        if len(found) != 1 or name in outputs or graph.node[found[0]].op_type != op:
            return None
        return found[0]

    folds = {}
    for index, node in enumerate(graph.node):
        if node.op_type != "InstanceNormalization" or len(node.input) != 3:
            continue
        mul = only_reader(node.output[0], "Mul")
        add = only_reader(graph.node[mul].output[0], "Add") if mul is not None else None
        if mul is not None and add is not None and len(graph.node[mul].input) == 2:
            folds[add] = (index, mul)
    return folds


def _twins(model: onnx.ModelProto, shapes: dict[str, list[int]], keep: set[str] | None) -> _Twins:
    twins = _Twins(model.graph, shapes, default_opset(model), keep)
    for index, node in enumerate(model.graph.node):
        twins.visit(index, node)
    return twins


def _leading_to_entries(twins: _Twins) -> set[str]:
    """The twinned tensors whose twins a Winograd layer's input is made from (directly or through others)."""
    entry_twins = set(twins.entries.values())
    useful = {name for name, twin in twins.twin.items() if twin in entry_twins}
    stack = list(useful)
    while stack:
        for source in twins.reads.get(stack.pop(), ()):
            if source not in useful:
                useful.add(source)
                stack.append(source)
    return useful


def channels_last_model(
    model: onnx.ModelProto, shapes: dict[str, list[int]] | None = None
) -> tuple[onnx.ModelProto, int]:
    """`model` (rewritten in place) with channels-last maps between its Winograd layers, and how many layers
    now read a channels-last twin instead of transposing their input (0: `model` is left as it was).

    `shapes` (tensor name -> shape) are inferred when not given; a map whose shape is unknown gets no twin.
    """
    shapes = static_shapes(model) if shapes is None else shapes
    # 1. Which maps can have a twin, then only those that lead to a Winograd layer's input.
    useful = _leading_to_entries(_twins(model, shapes, None))
    if not useful:
        return model, 0
    twins = _twins(model, shapes, useful)
    # 2. What is still read channels first: by the nodes that stay, and as graph outputs.
    replaced = set(twins.made)
    first: set[str] = {output.name for output in model.graph.output if output.name in twins.twin}
    for index, node in enumerate(model.graph.node):
        if index not in replaced and node.output[:1] and node.output[0] not in twins.entries:
            first.update(name for name in node.input if name in twins.twin)
    # 3. The new node list: twins in place of the nodes they replace, transposed back where still read.
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        if node.output[:1] and node.output[0] in twins.entries:
            continue
        if index in replaced:
            nodes.extend(twins.made[index])
            output = node.output[0]
            if output in first:
                nodes.append(helper.make_node("Transpose", [twins.twin[output]], [output], perm=TO_FIRST))
            continue
        renamed = onnx.NodeProto()
        renamed.CopyFrom(node)
        for i, name in enumerate(renamed.input):
            if name in twins.entries:
                renamed.input[i] = twins.entries[name]
        nodes.append(renamed)
    # 4. Whatever nobody reads any more goes: nodes, then the initializers only they read.
    before = {name for node in model.graph.node for name in node.input}
    kept = _live(nodes, {output.name for output in model.graph.output})
    after = {name for node in kept for name in node.input}
    del model.graph.node[:]
    model.graph.node.extend(kept)
    for i in reversed(range(len(model.graph.initializer))):
        name = model.graph.initializer[i].name
        if name in before and name not in after:
            del model.graph.initializer[i]
    produced = {output for node in kept for output in node.output}
    for i in reversed(range(len(model.graph.value_info))):
        if model.graph.value_info[i].name not in produced:
            del model.graph.value_info[i]
    return model, len(twins.entries)


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes something reads (a graph output, or a live node's input), in their order."""
    needed = set(outputs)
    live = []
    for node in reversed(nodes):
        if any(output in needed for output in node.output):
            live.append(node)
            needed.update(node.input)
    return live[::-1]
