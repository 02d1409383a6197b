"""Helpers shared by the tiny-model builders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def initializer(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name=name)


def save_model(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="swapspot-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def float_input(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def build_computed_padding_conv(path: Path, weight: np.ndarray, relu: bool = False, size: int = 16) -> Path:
    """x (1, C, size, size) -> [Relu] -> reflect Pad by 1 -> 3x3 Conv (`weight`, no bias) -> y.

    The pads come out of an Abs node, as some exporters compute them: ONNX shape inference cannot follow
    that, so the Conv's input shape ("padded") is known only from a run.
    """
    channels = weight.shape[1]
    nodes = [helper.make_node("Relu", ["x"], ["r"])] if relu else []
    nodes += [
        helper.make_node("Abs", ["pads_negated"], ["pads"]),
        helper.make_node("Pad", ["r" if relu else "x", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Conv", ["padded", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "computed_pads",
        [float_input("x", [1, channels, size, size])],
        [float_input("y", [1, weight.shape[0], size, size])],
        [
            initializer("pads_negated", np.array([0, 0, -1, -1, 0, 0, -1, -1], np.int64)),
            initializer("w", weight.astype(np.float32)),
        ],
    )
    return save_model(graph, path)
