"""An SCRFD-shaped detector: input `images` 1x3x640x640, outputs out0..out8 like the 640x640 exports.

Its outputs do not depend on the pixels (they are constants plus 0 x mean(input), so the graph still
consumes its input): it always "finds" the faces it was built with, which makes tests that need a
detector deterministic without any real weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from tests.model_builders.common import float_input, initializer, save_model

STRIDES = (8, 16, 32)
SIZE = 640


def _anchor_index(stride: int, cx: float, cy: float) -> int:
    cols = SIZE // stride
    return (int(cy // stride) * cols + int(cx // stride)) * 2


def build_fake_scrfd(path: Path, faces: list[tuple[tuple[float, float, float, float], np.ndarray]]) -> Path:
    """faces: (box xyxy, kps (5, 2)) in 640x640 input pixels, each placed on the stride-16 grid."""
    outputs: dict[str, np.ndarray] = {}
    scores = {s: np.zeros((1, (SIZE // s) ** 2 * 2, 1), np.float32) for s in STRIDES}
    boxes = {s: np.zeros((1, (SIZE // s) ** 2 * 2, 4), np.float32) for s in STRIDES}
    kpss = {s: np.zeros((1, (SIZE // s) ** 2 * 2, 10), np.float32) for s in STRIDES}
    stride = 16
    for (x1, y1, x2, y2), kps in faces:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        idx = _anchor_index(stride, cx, cy)
        ax, ay = (int(cx // stride)) * stride, (int(cy // stride)) * stride
        scores[stride][0, idx, 0] = 0.95
        boxes[stride][0, idx] = np.array([ax - x1, ay - y1, x2 - ax, y2 - ay], np.float32) / stride
        kpss[stride][0, idx] = ((np.asarray(kps, np.float32) - [ax, ay]) / stride).reshape(-1)
    for level, s in enumerate(STRIDES):
        outputs[f"out{level}"] = scores[s]
        outputs[f"out{level + 3}"] = boxes[s]
        outputs[f"out{level + 6}"] = kpss[s]
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["z"]),
    ]
    inits = [initializer("zero", np.zeros((), np.float32))]
    outs = []
    for name, value in sorted(outputs.items(), key=lambda item: int(item[0][3:])):
        inits.append(initializer(f"{name}_const", value))
        nodes.append(helper.make_node("Add", [f"{name}_const", "z"], [name]))
        outs.append(helper.make_tensor_value_info(name, 1, list(value.shape)))
    graph = helper.make_graph(nodes, "fake_scrfd", [float_input("images", [1, 3, SIZE, SIZE])], outs, inits)
    return save_model(graph, path)


def face_at(cx: float, cy: float, size: float) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """A face box of `size` px centred at (cx, cy) with keypoints in frontal-face proportions."""
    half = size / 2
    box = (cx - half, cy - half, cx + half, cy + half)
    rel = np.array([[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]], np.float32)
    kps = np.array([cx - half, cy - half], np.float32) + rel * size
    return box, kps
