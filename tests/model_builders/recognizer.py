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
