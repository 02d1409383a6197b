"""Shared types: array aliases, the immutable `Face` record and settings dataclasses.

Conventions used everywhere in `pipelines/`:
- Images are RGB, uint8, shape (height, width, 3), C-contiguous.
- Points are (x, y) in pixels, float32.
- Affine matrices are 2x3 float64, mapping source pixels to destination pixels (OpenCV convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

ImageRGB: TypeAlias = NDArray[np.uint8]
"""RGB image, uint8, shape (H, W, 3)."""

Mask: TypeAlias = NDArray[np.float32]
"""Blend weights in [0, 1], float32, shape (H, W)."""

Keypoints5: TypeAlias = NDArray[np.float32]
"""Five facial keypoints (left eye, right eye, nose tip, left mouth corner, right mouth corner), (5, 2)."""

Landmarks106: TypeAlias = NDArray[np.float32]
"""106-point landmarks from the 2d106det model, (106, 2)."""

Embedding: TypeAlias = NDArray[np.float32]
"""L2-normalised identity embedding, float32, shape (512,)."""

Matrix2x3: TypeAlias = NDArray[np.float64]
"""Affine transform, float64, shape (2, 3)."""

BoxXYXY: TypeAlias = tuple[float, float, float, float]
"""Axis-aligned box (x1, y1, x2, y2) in pixels."""

FaceSelection = Literal["all", "largest", "reference"]
"""Which target faces a swap changes."""

EngineName = Literal["inswapper", "classic"]
"""Available swap engines."""


def _frozen_copy(array: np.ndarray, dtype: type, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A read-only float copy, so a `Face` can be shared between threads without surprises."""
    out: np.ndarray = np.array(array, dtype=dtype, copy=True)
    if shape is not None and out.shape != shape:
        raise ValueError(f"expected shape {shape}, got {out.shape}")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face. Immutable: its arrays are read-only copies."""

    box: BoxXYXY
    kps: Keypoints5
    score: float
    embedding: Embedding | None = None
    landmarks_106: Landmarks106 | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))
        object.__setattr__(self, "kps", _frozen_copy(self.kps, np.float32, (5, 2)))
        object.__setattr__(self, "score", float(self.score))
        if self.embedding is not None:
            object.__setattr__(self, "embedding", _frozen_copy(self.embedding, np.float32))
        if self.landmarks_106 is not None:
            object.__setattr__(self, "landmarks_106", _frozen_copy(self.landmarks_106, np.float32, (106, 2)))

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def size(self) -> float:
        """Geometric mean of width and height: the face size in pixels used for size buckets."""
        return float(np.sqrt(self.area))

    def with_embedding(self, embedding: Embedding) -> Face:
        return Face(self.box, self.kps, self.score, embedding, self.landmarks_106)

    def with_landmarks(self, landmarks_106: Landmarks106) -> Face:
        return Face(self.box, self.kps, self.score, self.embedding, landmarks_106)


@dataclass(frozen=True)
class AnalysisSettings:
    """How faces are found."""

    det_size: int = 640  # detector input side in pixels (fixed-size models ignore other values)
    det_threshold: float = 0.5  # minimum detector confidence for a face
    nms_threshold: float = 0.4  # IoU above which overlapping detections are merged
    max_faces: int = 0  # keep at most this many faces, largest first (0 = all)
    min_face_size: float = 0.0  # drop faces smaller than this many pixels (geometric mean of box sides)


@dataclass(frozen=True)
class ImageLimits:
    """What an uploaded photo may be, checked before it is decoded."""

    max_bytes: int = 50 * 1024 * 1024  # refuse files larger than this
    max_pixels: int = 40_000_000  # refuse images whose header claims more pixels than this
    max_side: int = 12_000  # refuse images wider or taller than this


@dataclass(frozen=True)
class RuntimeSettings:
    """How onnxruntime sessions are created."""

    providers: tuple[str, ...] = field(default_factory=lambda: ("CUDAExecutionProvider", "CPUExecutionProvider"))
    # ^ tried in order; those missing from this onnxruntime build are skipped (CPU always last)
    intra_op_threads: int = 0  # 0 lets onnxruntime choose (all cores)
    spin_wait: bool = False  # let idle onnxruntime threads spin (a little faster alone, wasteful when shared)


@dataclass(frozen=True)
class SwapSettings:
    """How a swap is done; one immutable value per request (safe to share between threads)."""

    engine: EngineName = "inswapper"  # "inswapper" (neural, 128 px) or "classic" (keypoint warp + blend)
    faces: FaceSelection = "all"  # which target faces change: all, the largest, or those matching a reference
    reference_threshold: float = 0.35  # cosine similarity to a reference photo at or above which a face matches
    source_face_index: int | None = None  # which face of a multi-face source photo (None = the largest)
    colour_correction: bool = False  # inswapper: move the swapped face's LAB mean/std to the target's
    mouth_mask: bool = False  # keep the target's own mouth (106 landmarks when loaded, else the 5 keypoints)
    poisson: bool = False  # classic: Poisson (cv2.seamlessClone) blending before the feathered mask
