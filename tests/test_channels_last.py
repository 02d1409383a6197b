"""Channels-last maps between Winograd layers (`pipelines.channels_last`): the same results with fewer transposes.

The pass is checked on float graphs that have the int8 Winograd layers' exact boundaries (a channels-first map
transposed to channels last on the way in; an (H*W, K) result transposed and reshaped to channels first on the
way out) around a float 1x1 convolution, so any difference is a mistake of the pass and not int8 rounding; and
once on a real int8 Winograd model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines import winograd_int8
from pipelines.channels_last import channels_last_model
from pipelines.winograd_int8 import int8_winograd_model
from tests.model_builders.swapper import _Graph

C, H, W = 8, 8, 8
RNG = np.random.default_rng(5)


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, feed)]


class Graph(_Graph):
    """The model builders' graph under construction, with the pieces these tests assemble."""

    def __init__(self) -> None:
        super().__init__(seed=5)

    def layer(self, x: str, size: tuple[int, int] = (H, W), crop: bool = False) -> str:
        """A 'Winograd layer' with the int8 layers' boundaries (transpose in; an (H*W, K) result, transposed
        and reshaped out) around a float 1x1 convolution; `crop` drops the outer ring first, as a 3x3 layer
        without padding does."""
        h, w = size
        nhwc = self.node("Transpose", [x], perm=[0, 2, 3, 1])
        if crop:
            h, w = h - 2, w - 2
            starts, ends = (
                self.const("c", np.array([1, 1], np.int64)),
                self.const("c", np.array([h + 1, w + 1], np.int64)),
            )
            nhwc = self.node("Slice", [nhwc, starts, ends, self.const("c", np.array([1, 2], np.int64))])
        rows = self.node("Reshape", [nhwc, self.const("c", np.array([h * w, C], np.int64))])
        weight = self.const("w", (self.rng.standard_normal((C, C)) / np.sqrt(C)).astype(np.float32))
        hwk = self.node(
            "Reshape", [self.node("MatMul", [rows, weight]), self.const("c", np.array([h * w, C], np.int64))]
        )
        khw = self.node("Transpose", [hwk], perm=[1, 0])
        return self.node("Reshape", [khw, self.const("c", np.array([1, C, h, w], np.int64))])

    def style_norm(self, x: str, style: str, offset: int) -> str:
        """Instance norm, then the style's per-channel scale and shift (sliced from a (1, 2C, 1, 1) vector)."""
        scale = self.const("s", (RNG.random(C) + 0.5).astype(np.float32))
        bias = self.const("b", RNG.standard_normal(C).astype(np.float32))
        normed = self.node("InstanceNormalization", [x, scale, bias], epsilon=1e-5)
        axis = self.const("c", np.array([1], np.int64))
        gain = self.node(
            "Slice",
            [
                style,
                self.const("c", np.array([offset], np.int64)),
                self.const("c", np.array([offset + C], np.int64)),
                axis,
            ],
        )
        shift_start = self.const("c", np.array([offset + C], np.int64))
        shift = self.node("Slice", [style, shift_start, self.const("c", np.array([offset + 2 * C], np.int64)), axis])
        return self.node("Add", [self.node("Mul", [normed, gain]), shift])

    def pad(self, x: str, mode: str = "reflect") -> str:
        return self.node("Pad", [x, self.const("c", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode=mode)

    def model(self, outputs: list[str], emap: bool = True) -> onnx.ModelProto:
        inits = list(self.inits)
        if emap:  # an unread last initializer, like the inswapper's emap
            inits.append(numpy_helper.from_array(np.eye(4, dtype=np.float32), "emap"))
        graph = helper.make_graph(
            self.nodes,
            "g",
            [
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W]),
                helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 8 * C]),
            ],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
            inits,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def style_blocks(blocks: int = 2) -> tuple[Graph, str]:
    """inswapper's style blocks: (reflect pad, 3x3 layer, AdaIN, ReLU, reflect pad, 3x3 layer, AdaIN) plus the
    block's input, after a LeakyRelu."""
    g = Graph()
    style = g.node("Reshape", ["style", g.const("c", np.array([1, 8 * C, 1, 1], np.int64))])
    x = g.node("LeakyRelu", ["x"], alpha=0.2)
    for block in range(blocks):
        inner = g.layer(g.pad(x), (H + 2, W + 2), crop=True)
        inner = g.node("Relu", [g.style_norm(inner, style, 4 * C * (block % 2))])
        inner = g.style_norm(g.layer(g.pad(inner), (H + 2, W + 2), crop=True), style, 4 * C * (block % 2) + 2 * C)
        x = g.node("Add", [x, inner])
    return g, x


def feed() -> dict[str, np.ndarray]:
    return {
        "x": RNG.standard_normal((1, C, H, W)).astype(np.float32) * 2 + 1,
        "style": RNG.standard_normal((1, 8 * C)).astype(np.float32),
    }


def op_count(model: onnx.ModelProto, op: str) -> int:
    return sum(node.op_type == op for node in model.graph.node)


def test_style_blocks_give_the_same_result_with_fewer_transposes() -> None:
    g, out = style_blocks(blocks=3)
    # The last block's output is read channels first (by a 1x1 Conv) and as a graph output.
    conv = g.node("Conv", [out, g.const("c", RNG.standard_normal((C, C, 1, 1)).astype(np.float32))])
    model = g.model([conv, out])
    inputs = feed()
    expected = run(model, inputs)
    transposes = op_count(model, "Transpose")
    rewritten, entries = channels_last_model(model)
    got = run(rewritten, inputs)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
    # Layer 1 reads the LeakyRelu's twin, layers 2..6 their neighbours' twins: all 6 entries go.
    assert entries == 6
    # Five AdaINs are folded into BatchNormalization; the last one leads to no layer and stays channels first.
    assert op_count(rewritten, "BatchNormalization") == 5
    assert op_count(rewritten, "InstanceNormalization") == 1
    # Out: 6 in and 5 out transposes; in: one for the first block's input, one back for block 2's output (the
    # last residual sum, channels first, reads it).
    assert op_count(rewritten, "Transpose") == transposes - 11 + 2


def test_a_model_without_winograd_layers_is_left_as_it_is() -> None:
    g = Graph()
    out = g.node("Relu", [g.pad("x")])
    model = g.model([out])
    before = model.SerializeToString()
    rewritten, entries = channels_last_model(model)
    assert entries == 0
    assert rewritten.SerializeToString() == before


def test_initializers_keep_their_order_and_nothing_unread_is_left() -> None:
    g, out = style_blocks(blocks=2)
    model = g.model([out])
    names_before = [init.name for init in model.graph.initializer]
    rewritten, entries = channels_last_model(model)
    assert entries > 0
    names_after = [init.name for init in rewritten.graph.initializer]
    assert names_after[-1] == "emap"  # the inswapper's emap is read as the last initializer
    assert names_after == [name for name in names_before if name in names_after]  # same order, some dropped
    read = {name for node in rewritten.graph.node for name in node.input}
    assert [name for name in names_after if name not in read] == ["emap"]


def test_instance_norm_alone_and_other_element_wise_ops() -> None:
    """An instance norm with no style after it, Sub and Div with a scalar and a per-channel constant, a full-size
    channels-first operand, edge padding: each still matches."""
    g = Graph()
    y = g.layer("x")
    normed = g.node(
        "InstanceNormalization", [y, g.const("c", np.ones(C, np.float32)), g.const("c", np.zeros(C, np.float32))]
    )
    y = g.node("Sub", [normed, g.const("c", np.array(0.25, np.float32))])
    y = g.node("Div", [y, g.const("c", (RNG.random((1, C, 1, 1)) + 1).astype(np.float32))])
    y = g.node("Mul", ["x", y])  # the graph input, channels first, same shape
    y = g.layer(g.pad(g.node("Sigmoid", [y]), "edge"), (H + 2, W + 2), crop=True)
    model = g.model([y])
    inputs = feed()
    expected = run(model, inputs)[0]
    rewritten, entries = channels_last_model(model)
    got = run(rewritten, inputs)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert entries == 1  # the second layer reads a twin (the first one reads the graph input)


def test_padding_into_a_layer_is_done_channels_last() -> None:
    """The first layer's reflect padding (uneven here) happens after the transpose, so the layer reads a twin."""
    g = Graph()
    padded = g.node("Pad", ["x", g.const("c", np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64))], mode="reflect")
    y = g.layer(padded, size=(H + 4, W + 2))
    model = g.model([y])
    inputs = feed()
    expected = run(model, inputs)[0]
    rewritten, entries = channels_last_model(model)
    np.testing.assert_allclose(run(rewritten, inputs)[0], expected, rtol=1e-5, atol=1e-6)
    assert entries == 1
    pad = next(node for node in rewritten.graph.node if node.op_type == "Pad")
    producer = next(node for node in rewritten.graph.node if pad.input[0] in node.output)
    assert producer.op_type == "Transpose"


def test_a_map_of_unknown_shape_stops_the_chain_safely() -> None:
    """A Mul with an operand whose shape nothing tells is left channels first; the result is the same."""
    g = Graph()
    y = g.layer("x")
    unknown = g.node("Reshape", ["style", g.const("c", np.array([1, -1, 1, 1], np.int64))])  # (1, 8C, 1, 1): not C
    gain = g.node(
        "Slice",
        [
            unknown,
            g.const("c", np.array([0], np.int64)),
            g.const("c", np.array([C], np.int64)),
            g.const("c", np.array([1], np.int64)),
        ],
    )
    y = g.layer(g.node("Mul", [y, gain]))
    model = g.model([y])
    inputs = feed()
    expected = run(model, inputs)[0]
    rewritten, entries = channels_last_model(model, shapes={})  # no shapes at all
    np.testing.assert_allclose(run(rewritten, inputs)[0], expected, rtol=1e-5, atol=1e-6)
    assert entries == 0


def adain_chain(channels: int = 16, size: int = 8, layers: int = 4) -> onnx.ModelProto:
    """(reflect pad, 3x3 conv, instance norm, ReLU) x `layers`."""
    rng = np.random.default_rng(3)
    nodes, inits = [], []
    x = "x"
    for index in range(layers):
        pad = f"pad{index}"
        inits.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), f"pads{index}"))
        nodes.append(helper.make_node("Pad", [x, f"pads{index}"], [pad], mode="reflect"))
        weight = (rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{index}"))
        inits.append(numpy_helper.from_array(np.ones(channels, np.float32), f"s{index}"))
        inits.append(numpy_helper.from_array(np.zeros(channels, np.float32), f"b{index}"))
        nodes.append(helper.make_node("Conv", [pad, f"w{index}"], [f"conv{index}"]))
        nodes.append(
            helper.make_node("InstanceNormalization", [f"conv{index}", f"s{index}", f"b{index}"], [f"in{index}"])
        )
        nodes.append(helper.make_node("Relu", [f"in{index}"], [f"r{index}"]))
        x = f"r{index}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, channels, size, size])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_staged_int8_model_is_channels_last_and_a_failing_pass_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines import channels_last
    from pipelines.quantize import write_winograd_stage
    from pipelines.winograd_int8 import calibrate_file

    source = tmp_path / "chain.onnx"
    onnx.save(adain_chain(), source)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal((1, 16, 8, 8)).astype(np.float32)} for _ in range(3)]
    calibration = calibrate_file(source, feeds, min_width=1, largest=2)
    staged = tmp_path / "staged.onnx"
    assert write_winograd_stage(source, staged, calibration) == ([2, 2, 2, 2], 0)
    with_pass = op_count(onnx.load(str(staged)), "Transpose")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a graph the pass cannot follow")

    monkeypatch.setattr(channels_last, "channels_last_model", broken)
    assert write_winograd_stage(source, staged, calibration) == ([2, 2, 2, 2], 0)
    without = onnx.load(str(staged))
    assert op_count(without, "Transpose") == with_pass + 6  # 4 in, 4 out; the pass adds 1 in and 1 back
    assert run(without, feeds[0])[0].shape == (1, 16, 8, 8)


@pytest.mark.parametrize("block", [2, 4])
def test_int8_winograd_style_blocks(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real int8 Winograd layers (F(2x2) and F(4x4)) with instance norms between them: the layers read twins
    and the result is as close to float as without the pass."""
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 1)  # F(4x4) for 16 channels too
    channels, size = 16, 8
    rng = np.random.default_rng(3)
    model = adain_chain(channels, size)
    feeds = [{"x": rng.standard_normal((1, channels, size, size)).astype(np.float32)} for _ in range(4)]
    fp32 = run(model, feeds[0])[0]
    int8, blocks = int8_winograd_model(model, feeds, min_width=1, largest=block)
    assert blocks == [block] * 4
    plain = run(int8, feeds[0])[0]
    rewritten, entries = channels_last_model(int8)
    assert entries == 4
    assert op_count(rewritten, "InstanceNormalization") == 1  # the last one leads to no layer
    got = run(rewritten, feeds[0])[0]

    def relative(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2)))

    # Usually identical; where a value lies on an int8 rounding boundary, its last float bit can round it the other
    # way (a 5% difference here, with 16 channels), still well within the int8 error itself (14% for F(4x4)).
    assert relative(got, plain) < 0.5 * relative(plain, fp32)
    assert relative(got, fp32) < 1.1 * relative(plain, fp32)
