"""Swapper graphs in the inswapper_128 contract (inputs `target` 1x3x128x128 and `source` 1x512, output
`output` 1x3x128x128 in [0, 1], a 512x512 `emap` as the LAST initializer), with random weights.

- `build_tiny_inswapper`: a few thousand parameters, runs in well under a millisecond; inside the face
  region of the crop its output is sigmoid(gain * (target - 0.5) + linear(source)) per channel (the
  target's structure, visibly tinted by the source identity), outside it returns the target unchanged,
  like a trained swapper. For fast tests and paste-back benchmarks.
- `build_inswapper_topology`: the full inswapper layer layout (../shared/reference/inswapper.md), 138 M
  parameters and a ~554 MB file. For benchmarks and opt-in slow tests only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from tests.model_builders.common import float_input, initializer, save_model

SIZE = 128
LATENT = 512


def _emap(rng: np.random.Generator) -> np.ndarray:
    """A well-conditioned random 512x512 map (identity plus noise), like the real emap's role."""
    return (np.eye(LATENT) + 0.05 * rng.standard_normal((LATENT, LATENT))).astype(np.float32)


def _io() -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    inputs = [float_input("target", [1, 3, SIZE, SIZE]), float_input("source", [1, LATENT])]
    outputs = [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 3, SIZE, SIZE])]
    return inputs, outputs


def face_weight(size: int = SIZE) -> np.ndarray:
    """Where a swapper changes a 128 px aligned crop: a flat-topped ellipse over the face (brows to chin),
    exactly 0 elsewhere, as a trained swapper reproduces hair, ears and background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) * (SIZE / size)
    radius = ((xx - 64.0) / 30.0) ** 2 + ((yy - 74.0) / 36.0) ** 2
    weight = np.where(radius < 2.0, np.exp(-(radius**2)), 0.0)
    return weight.astype(np.float32).reshape(1, 1, size, size)


def build_tiny_inswapper(
    path: Path, seed: int = 0, gain: float = 4.0, tint: float = 3.0, face_only: bool = True, busy_convs: int = 0
) -> Path:
    """output = target + w * (sigmoid(gain * target - gain / 2 + tint * source @ proj) - target) + 0.5 / 255.

    w is `face_weight()` (face_only) or 1 everywhere; the 0.5/255 makes the caller's truncation to uint8
    a rounding, so pixels the swapper leaves alone come back unchanged. `busy_convs` > 0 adds that many
    64-channel 3x3 convolutions at 128 px whose result is multiplied by zero: the same output, but a
    forward that costs real CPU time (about 20 ms each on one core), like a real swapper.
    """
    rng = np.random.default_rng(seed)
    weight = (gain * np.eye(3)).reshape(3, 3, 1, 1).astype(np.float32)
    bias = np.full(3, -gain / 2, np.float32)
    proj = (tint * rng.standard_normal((LATENT, 3))).astype(np.float32)
    spatial = face_weight() if face_only else np.ones((1, 1, SIZE, SIZE), np.float32)
    nodes = [
        helper.make_node("Conv", ["target", "w", "b"], ["conv"]),
        helper.make_node("MatMul", ["source", "proj"], ["tint"]),
        helper.make_node("Reshape", ["tint", "tint_shape"], ["tint4"]),
        helper.make_node("Add", ["conv", "tint4"], ["pre"]),
        helper.make_node("Sigmoid", ["pre"], ["swapped"]),
        helper.make_node("Sub", ["swapped", "target"], ["change"]),
        helper.make_node("Mul", ["change", "spatial"], ["local"]),
        helper.make_node("Add", ["target", "local"], ["mixed"]),
        helper.make_node("Add", ["mixed", "half_level"], ["output"]),
    ]
    inits = [
        initializer("w", weight),
        initializer("b", bias),
        initializer("proj", proj),
        initializer("tint_shape", np.array([1, 3, 1, 1], np.int64)),
        initializer("spatial", spatial),
        initializer("half_level", np.full(1, 0.5 / 255.0, np.float32)),
        initializer("emap", _emap(rng)),  # must stay last: INSwapper reads graph.initializer[-1]
    ]
    if busy_convs > 0:
        nodes[-1] = helper.make_node("Add", ["mixed", "half_level"], ["kept"])
        wide = (rng.standard_normal((64, 3, 3, 3)) * 0.1).astype(np.float32)
        square = (rng.standard_normal((64, 64, 3, 3)) * 0.02).astype(np.float32)
        narrow = (rng.standard_normal((3, 64, 1, 1)) * 0.1).astype(np.float32)
        inits += [initializer("busy_in", wide), initializer("busy_w", square), initializer("busy_out", narrow)]
        inits += [initializer("busy_zero", np.zeros((1, 3, 1, 1), np.float32))]
        nodes.append(helper.make_node("Conv", ["target", "busy_in"], ["busy0"], pads=[1, 1, 1, 1]))
        for i in range(busy_convs):
            nodes.append(helper.make_node("Conv", [f"busy{i}", "busy_w"], [f"busy{i + 1}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Conv", [f"busy{busy_convs}", "busy_out"], ["busy_rgb"]))
        nodes.append(helper.make_node("Mul", ["busy_rgb", "busy_zero"], ["busy_nothing"]))
        nodes.append(helper.make_node("Add", ["kept", "busy_nothing"], ["output"]))
        inits.append(inits.pop(inits.index(next(i for i in inits if i.name == "emap"))))  # emap stays last
    inputs, outputs = _io()
    return save_model(helper.make_graph(nodes, "tiny_inswapper", inputs, outputs, inits), path)


class _Graph:
    """Accumulates nodes and random initializers with unique names."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, array: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(initializer(name, array))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> str:
        std = np.sqrt(2.0 / (cin * k * k))
        w = self.const("w", (std * self.rng.standard_normal((cout, cin, k, k), dtype=np.float32)).astype(np.float32))
        b = self.const("b", np.zeros(cout, np.float32))
        return self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def reflect_pad(self, x: str, pad: int) -> str:
        pads = self.const("pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64))
        return self.node("Pad", [x, pads], mode="reflect")

    def leaky(self, x: str) -> str:
        return self.node("LeakyRelu", [x], alpha=0.2)

    def adain(self, x: str, latent: str, channels: int) -> str:
        scale = self.const("in_scale", np.ones(channels, np.float32))
        zero = self.const("in_bias", np.zeros(channels, np.float32))
        normed = self.node("InstanceNormalization", [x, scale, zero], epsilon=1e-5)
        weight = (self.rng.standard_normal((LATENT, 2 * channels), dtype=np.float32) / np.sqrt(LATENT)).astype(
            np.float32
        )
        style = self.node(
            "Gemm", [latent, self.const("fc_w", weight), self.const("fc_b", np.zeros(2 * channels, np.float32))]
        )
        shape = self.const("shape", np.array([1, 2 * channels, 1, 1], np.int64))
        style4 = self.node("Reshape", [style, shape])
        gamma = self.node(
            "Slice",
            [
                style4,
                self.const("s0", np.array([0])),
                self.const("s1", np.array([channels])),
                self.const("ax", np.array([1])),
            ],
        )
        beta = self.node(
            "Slice",
            [
                style4,
                self.const("s0", np.array([channels])),
                self.const("s1", np.array([2 * channels])),
                self.const("ax", np.array([1])),
            ],
        )
        return self.node("Add", [self.node("Mul", [normed, gamma]), beta])

    def upsample(self, x: str) -> str:
        scales = self.const("scales", np.array([1.0, 1.0, 2.0, 2.0], np.float32))
        return self.node("Resize", [x, "", scales], mode="linear")


def build_inswapper_topology(path: Path, seed: int = 0, blocks: int = 6, width: int = 1024) -> Path:
    """The full inswapper_128 layer layout with random weights (138 M parameters with 6 style blocks).

    `width` is the style blocks' channel count (1024 in the real network); every other layer scales with it,
    so a small width gives the same graph at a fraction of the cost (for tests).
    """
    g = _Graph(seed)
    c = width // 8
    # 1. Encoder: 128 px -> 32 px, `width` channels.
    x = g.leaky(g.conv(g.reflect_pad("target", 3), 3, c, 7))
    x = g.leaky(g.conv(x, c, 2 * c, 3, pad=1))
    x = g.leaky(g.conv(x, 2 * c, 4 * c, 3, stride=2, pad=1))
    x = g.leaky(g.conv(x, 4 * c, width, 3, stride=2, pad=1))
    # 2. Style blocks: the latent enters only through the AdaIN linears.
    for _ in range(blocks):
        y = g.adain(g.conv(g.reflect_pad(x, 1), width, width, 3), "source", width)
        y = g.node("Relu", [y])
        y = g.adain(g.conv(g.reflect_pad(y, 1), width, width, 3), "source", width)
        x = g.node("Add", [x, y])
    # 3. Decoder back to 128 px, RGB in [0, 1].
    x = g.leaky(g.conv(g.upsample(x), width, 4 * c, 3, pad=1))
    x = g.leaky(g.conv(g.upsample(x), 4 * c, 2 * c, 3, pad=1))
    x = g.leaky(g.conv(x, 2 * c, c, 3, pad=1))
    x = g.node("Tanh", [g.conv(g.reflect_pad(x, 3), c, 3, 7)])
    x = g.node(
        "Mul",
        [g.node("Add", [x, g.const("one", np.ones(1, np.float32))]), g.const("half", np.full(1, 0.5, np.float32))],
    )
    g.nodes.append(helper.make_node("Identity", [x], ["output"]))
    g.inits.append(initializer("emap", _emap(g.rng)))  # must stay last
    inputs, outputs = _io()
    return save_model(helper.make_graph(g.nodes, "inswapper_topology", inputs, outputs, g.inits), path)


def parameter_count(path: Path) -> int:
    """Number of float parameters stored in an ONNX file."""
    model = onnx.load(str(path))
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
