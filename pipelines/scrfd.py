"""SCRFD face detector (InsightFace's det_10g / det_500m and their 640x640 exports).

Pre- and post-processing are pure functions; `ScrfdDetector.detect` is prepare -> forward -> decode.
The decoding follows the published SCRFD design: per stride (8, 16, 32), two anchors per grid cell,
a score, box distances (left, top, right, bottom) and 5 keypoint offsets, all in units of the stride.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from pipelines import onnx_runtime
from pipelines.errors import ModelError
from pipelines.types import ImageRGB, RuntimeSettings

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2
INPUT_MEAN = 127.5
INPUT_STD = 128.0


@dataclass(frozen=True)
class Detections:
    """Raw detector output in image pixels: boxes (N, 4) xyxy, scores (N,), keypoints (N, 5, 2)."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    kps: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def letterbox(image: ImageRGB, size: tuple[int, int]) -> tuple[ImageRGB, float]:
    """Resize keeping the aspect ratio into the top-left of a black (width, height) canvas.

    Returns the canvas and the scale from image pixels to canvas pixels.
    """
    width, height = size
    img_h, img_w = image.shape[:2]
    scale = min(width / img_w, height / img_h)
    new_w, new_h = max(1, round(img_w * scale)), max(1, round(img_h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas, scale


def to_blob(canvas: ImageRGB) -> NDArray[np.float32]:
    """RGB uint8 (H, W, 3) -> normalised float32 (1, 3, H, W)."""
    blob = (canvas.astype(np.float32) - INPUT_MEAN) / INPUT_STD
    return np.ascontiguousarray(blob.transpose(2, 0, 1)[None])


def anchor_centers(height: int, width: int, stride: int) -> NDArray[np.float32]:
    """Centres (x, y) of the anchors of one stride, row-major, each repeated per anchor."""
    rows, cols = height // stride, width // stride
    ys, xs = np.mgrid[:rows, :cols]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, ANCHORS_PER_CELL, axis=0)


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou_threshold: float) -> NDArray[np.intp]:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def decode(
    outputs: list[np.ndarray],
    input_size: tuple[int, int],
    scale: float,
    score_threshold: float,
    iou_threshold: float,
) -> Detections:
    """Turn the 9 SCRFD output tensors into boxes, scores and keypoints in original image pixels."""
    width, height = input_size
    levels = len(STRIDES)
    all_boxes, all_scores, all_kps = [], [], []
    for level, stride in enumerate(STRIDES):
        # 1. Outputs come as scores[0..2], boxes[3..5], keypoints[6..8]; batched exports add a leading 1.
        scores = outputs[level].reshape(-1)
        box_dist = outputs[level + levels].reshape(-1, 4) * stride
        kps_dist = outputs[level + 2 * levels].reshape(-1, 10) * stride
        centers = anchor_centers(height, width, stride)
        if centers.shape[0] != scores.shape[0]:
            raise ModelError(
                f"The detector output does not match an SCRFD layout ({scores.shape[0]} scores for "
                f"{centers.shape[0]} anchors at stride {stride})."
            )
        # 2. Keep confident anchors and convert distances to corners and keypoints.
        keep = np.where(scores >= score_threshold)[0]
        if keep.size == 0:
            continue
        c = centers[keep]
        d = box_dist[keep]
        all_boxes.append(np.stack([c[:, 0] - d[:, 0], c[:, 1] - d[:, 1], c[:, 0] + d[:, 2], c[:, 1] + d[:, 3]], 1))
        all_scores.append(scores[keep])
        all_kps.append(c[:, None, :] + kps_dist[keep].reshape(-1, 5, 2))
    if not all_scores:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))
    # 3. Back to image pixels, then non-maximum suppression.
    boxes = (np.concatenate(all_boxes) / scale).astype(np.float32)
    kps = (np.concatenate(all_kps) / scale).astype(np.float32)
    scores_all = np.concatenate(all_scores).astype(np.float32)
    keep_idx = nms(boxes, scores_all, iou_threshold)
    return Detections(boxes[keep_idx], scores_all[keep_idx], kps[keep_idx])


def any_size_variant(path: Path | str) -> bytes | None:
    """The same detector with a free input size, for exports that declare a fixed 640x640 input.

    SCRFD is fully convolutional and its exports compute every reshape and resize from the input's shape, so
    only the declared input and output shapes pin them to 640x640. With those freed, the live view can detect
    on a 320 px input (a quarter of the work). None when the file does not load as ONNX; the caller checks
    that the result agrees with the original before using it.
    """
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception:  # not readable as a plain ONNX protobuf: keep the original
        return None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return None
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    return bytes(model.SerializeToString())


def agrees_with(fixed: ort.InferenceSession, free: ort.InferenceSession, fixed_size: tuple[int, int]) -> bool:
    """True when the free-size session gives the fixed one's outputs at the fixed size and runs at half of it
    with the anchor counts SCRFD expects there."""
    name = fixed.get_inputs()[0].name
    rng = np.random.default_rng(0)
    width, height = fixed_size
    blob = rng.standard_normal((1, 3, height, width)).astype(np.float32)
    try:
        expected = onnx_runtime.run(fixed, {name: blob})
        got = onnx_runtime.run(free, {name: blob})
        if not all(a.shape == b.shape and np.allclose(a, b, atol=1e-4) for a, b in zip(expected, got, strict=True)):
            return False
        half = onnx_runtime.run(free, {name: blob[:, :, : height // 2, : width // 2]})
    except Exception:  # the graph does not run at another size after all
        return False
    levels = len(half) // 3
    return all(
        half[i].size == ANCHORS_PER_CELL * (height // 2 // stride) * (width // 2 // stride)
        for i, stride in enumerate(STRIDES[:levels])
    )


class ScrfdDetector:
    """Wraps one shared SCRFD session (and, for a fixed-size export, its free-size twin). Holds no per-call
    state, so it is safe to share."""

    def __init__(self, session: ort.InferenceSession, any_size: ort.InferenceSession | None = None) -> None:
        inputs = onnx_runtime.input_specs(session)
        outputs = onnx_runtime.output_specs(session)
        if len(inputs) != 1 or len(outputs) != 9:
            raise ModelError(
                "This file is not an SCRFD face detector with keypoints "
                f"(expected 1 input and 9 outputs, found {len(inputs)} and {len(outputs)})."
            )
        self.session = session
        self.any_size = any_size  # the same network with its declared input size freed (other sizes only)
        self.input_name = inputs[0].name
        _, _, h, w = inputs[0].shape
        self.fixed_size: tuple[int, int] | None = (int(w), int(h)) if h and w else None

    @classmethod
    def from_path(cls, path: Path | str, runtime: RuntimeSettings | None = None) -> ScrfdDetector:
        """Load the detector. A fixed-size export also gets a free-size twin for other input sizes, when that
        provably changes nothing; its own size keeps running on the file as shipped (bit for bit as before)."""
        session = onnx_runtime.create_session(path, runtime)
        detector = cls(session)
        if detector.fixed_size is not None:
            variant = any_size_variant(path)
            try:
                free = onnx_runtime.create_session(variant, runtime, name=str(path)) if variant else None
            except ModelError:  # the freed graph does not load: the file as shipped still works
                free = None
            if free is not None and agrees_with(session, free, detector.fixed_size):
                return cls(session, free)
        return detector

    def input_size_for(self, det_size: int) -> tuple[int, int]:
        """(width, height) fed to the network: det_size rounded to 32, or the model's own size when it is
        fixed and has no free-size twin."""
        if self.fixed_size is not None and self.any_size is None:
            return self.fixed_size
        side = max(32, round(det_size / 32) * 32)
        return side, side

    def session_for(self, size: tuple[int, int]) -> ort.InferenceSession:
        """The file as shipped wherever it can run; the free-size twin for the sizes it cannot."""
        if self.fixed_size is None or size == self.fixed_size or self.any_size is None:
            return self.session
        return self.any_size

    def detect(
        self, image: ImageRGB, det_size: int = 640, score_threshold: float = 0.5, iou_threshold: float = 0.4
    ) -> Detections:
        size = self.input_size_for(det_size)
        canvas, scale = letterbox(image, size)
        outputs = onnx_runtime.run(self.session_for(size), {self.input_name: to_blob(canvas)})
        return decode(outputs, size, scale, score_threshold, iou_threshold)
