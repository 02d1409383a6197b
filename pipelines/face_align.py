"""Pure geometry: 5-point similarity alignment to the ArcFace template, and its inverse.

No model is involved; everything here is a deterministic function of its arguments.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.types import ImageRGB, Keypoints5, Matrix2x3

ARCFACE_TEMPLATE_112: NDArray[np.float64] = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
"""Where the 5 keypoints of a frontal face land in a 112x112 ArcFace crop."""


def arcface_template(size: int) -> NDArray[np.float64]:
    """The ArcFace template scaled to a `size` crop, following insightface's convention.

    Multiples of 112 scale the template; multiples of 128 (the swapper's 128 px frame) scale it by
    size/128 and shift it right by 8 px per 128, so the face sits centred in the wider square.
    """
    if size % 112 == 0:
        ratio, shift_x = size / 112.0, 0.0
    elif size % 128 == 0:
        ratio, shift_x = size / 128.0, 8.0 * size / 128.0
    else:
        raise ValueError(f"alignment size must be a multiple of 112 or 128, got {size}")
    template = ARCFACE_TEMPLATE_112 * ratio
    template[:, 0] += shift_x
    return template


def estimate_similarity(src: NDArray[np.floating], dst: NDArray[np.floating]) -> Matrix2x3:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping src to dst.

    Umeyama's closed form (1991), without reflection. Returns a 2x3 float64 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    # 1. Centre both point sets.
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    # 2. Cross-covariance and its SVD give the best rotation.
    cov = dst_c.T @ src_c / src.shape[0]
    u, singular, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rotation = u @ np.diag(sign) @ vt
    # 3. Scale from the singular values and the source variance; translation from the means.
    src_var = (src_c**2).sum() / src.shape[0]
    scale = float((singular * sign).sum() / src_var) if src_var > 0 else 1.0
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def estimate_norm(kps: Keypoints5, size: int = 112) -> Matrix2x3:
    """The matrix that maps image pixels into the `size` x `size` aligned face frame."""
    kps = np.asarray(kps)
    if kps.shape != (5, 2):
        raise ValueError(f"expected 5 keypoints of shape (5, 2), got {kps.shape}")
    return estimate_similarity(kps, arcface_template(size))


def norm_crop(image: ImageRGB, kps: Keypoints5, size: int = 112) -> tuple[ImageRGB, Matrix2x3]:
    """Warp the face into the aligned frame. Returns the crop and the image->crop matrix."""
    matrix = estimate_norm(kps, size)
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return np.asarray(crop, dtype=np.uint8), matrix


def invert_affine(matrix: Matrix2x3) -> Matrix2x3:
    """Inverse of a 2x3 affine matrix."""
    return np.asarray(cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)), dtype=np.float64)


def transform_points(points: NDArray[np.floating], matrix: Matrix2x3) -> NDArray[np.float32]:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def similarity_scale(matrix: Matrix2x3) -> float:
    """The uniform scale factor of a similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
