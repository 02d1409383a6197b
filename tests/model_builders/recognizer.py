"""An ArcFace-shaped recognizer: input `input.1` 1x3x112x112, output 1x512 (random linear features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from tests.model_builders.common import float_input, initializer, save_model


def build_fake_arcface(path: Path, seed: int = 0) -> Path:
    """Average-pool to 3x14x14, flatten, project to 512 with fixed random weights."""
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((3 * 14 * 14, 512)) / np.sqrt(3 * 14 * 14)).astype(np.float32)
    nodes = [
        helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "proj"], ["683"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_arcface",
        [float_input("input.1", [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", 1, [1, 512])],
        [initializer("proj", weight)],
    )
    return save_model(graph, path)


def build_arcface_r50_topology(path: Path, seed: int = 0) -> Path:
    """The layer layout of ArcFace's IResNet-50 (w600k_r50: 43.6 M parameters, about 6.3 GMAC per face)
    with random weights, so a benchmark's recognition costs what the real model's does.

    Batch norms are folded into the convolutions (as an optimised export would); input `input.1`
    1x3x112x112, output 1x512.
    """
    from tests.model_builders.swapper import _Graph

    g = _Graph(seed)

    def prelu(x: str, channels: int) -> str:
        return g.node("PRelu", [x, g.const("slope", np.full((channels, 1, 1), 0.25, np.float32))])

    x = prelu(g.conv("input.1", 3, 64, 3, pad=1), 64)
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 14), (512, 3)):
        for block in range(blocks):
            stride = 2 if block == 0 else 1
            y = prelu(g.conv(x, inplanes, planes, 3, pad=1), planes)
            y = g.conv(y, planes, planes, 3, stride=stride, pad=1)
            shortcut = g.conv(x, inplanes, planes, 1, stride=stride) if block == 0 else x
            x = g.node("Add", [y, shortcut])
            inplanes = planes
    flat = g.node("Flatten", [x], axis=1)  # 512 x 7 x 7
    weight = (g.rng.standard_normal((512 * 7 * 7, 512), dtype=np.float32) / np.sqrt(512 * 7 * 7)).astype(np.float32)
    g.nodes.append(
        helper.make_node("Gemm", [flat, g.const("fc", weight), g.const("fc_b", np.zeros(512, np.float32))], ["683"])
    )
    graph = helper.make_graph(
        g.nodes,
        "arcface_r50_topology",
        [float_input("input.1", [1, 3, 112, 112])],
        [helper.make_tensor_value_info("683", 1, [1, 512])],
        g.inits,
    )
    return save_model(graph, path)
