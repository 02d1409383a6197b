"""Identity embeddings (ArcFace, 112x112 -> 512) and 106-point landmarks (2d106det, 192x192)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from pipelines import onnx_runtime
from pipelines.errors import ModelError
from pipelines.face_align import invert_affine, norm_crop, transform_points
from pipelines.types import BoxXYXY, Embedding, ImageRGB, Keypoints5, Landmarks106


def graph_normalises_input(path: Path | str) -> bool:
    """True when the graph starts by subtracting and multiplying (MXNet exports): feed raw pixels then."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError and friends
        raise ModelError(f"The model file {path} is not a readable ONNX file: {error}") from error
    names = [node.name for node in model.graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (has_sub and has_mul) or any(n == "bn_data" for n in names[:3])


def l2_normalise(vector: np.ndarray) -> Embedding:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise ModelError("The recognizer returned an empty embedding.")
    return (vector / norm).astype(np.float32)


class ArcFaceRecognizer:
    """Computes L2-normalised identity embeddings from a shared session."""

    def __init__(self, session: ort.InferenceSession, raw_pixels: bool = False) -> None:
        inputs = onnx_runtime.input_specs(session)
        if len(inputs) != 1 or inputs[0].shape[2:] != (112, 112):
            raise ModelError("This file is not an ArcFace recognizer (expected one 112x112 input).")
        self.session = session
        self.input_name = inputs[0].name
        self.mean, self.std = (0.0, 1.0) if raw_pixels else (127.5, 127.5)

    def embed_aligned(self, aligned: ImageRGB) -> Embedding:
        """Embedding of an already aligned 112x112 RGB crop."""
        blob = (aligned.astype(np.float32) - self.mean) / self.std
        out = onnx_runtime.run(self.session, {self.input_name: np.ascontiguousarray(blob.transpose(2, 0, 1)[None])})
        return l2_normalise(out[0])

    def embed(self, image: ImageRGB, kps: Keypoints5) -> Embedding:
        aligned, _ = norm_crop(image, kps, 112)
        return self.embed_aligned(aligned)


class Landmarker106:
    """106-point 2D landmarks around a detected face box."""

    def __init__(self, session: ort.InferenceSession, raw_pixels: bool = False) -> None:
        inputs = onnx_runtime.input_specs(session)
        if len(inputs) != 1 or inputs[0].shape[2:] != (192, 192):
            raise ModelError("This file is not a 2d106det landmark model (expected one 192x192 input).")
        self.session = session
        self.input_name = inputs[0].name
        self.mean, self.std = (0.0, 1.0) if raw_pixels else (127.5, 128.0)

    def landmarks(self, image: ImageRGB, box: BoxXYXY) -> Landmarks106:
        # 1. Crop a square 1.5x the box around its centre into 192x192.
        x1, y1, x2, y2 = box
        side = max(x2 - x1, y2 - y1) * 1.5
        scale = 192.0 / max(side, 1.0)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        matrix = np.array([[scale, 0.0, 96.0 - cx * scale], [0.0, scale, 96.0 - cy * scale]], dtype=np.float64)
        crop = cv2.warpAffine(image, matrix, (192, 192), borderValue=(0, 0, 0))
        # 2. Forward; the network predicts points in [-1, 1] of the crop.
        blob = (crop.astype(np.float32) - self.mean) / self.std
        pred = onnx_runtime.run(self.session, {self.input_name: np.ascontiguousarray(blob.transpose(2, 0, 1)[None])})
        points = pred[0].reshape(-1, 2)[-106:].astype(np.float64)
        points = (points + 1.0) * 96.0
        # 3. Back to image pixels.
        return transform_points(points, invert_affine(matrix))
