"""A simple classic ("cheapfake") face swap, used only to evaluate the detector.

This is what a classic swap engine does, written here so the evaluation does not depend on the app's
engine: warp another person's face onto the target with the similarity transform between the two sets
of 5 keypoints, match its colour to the target (mean and spread per LAB channel inside the mask), and
blend it through a feathered face-shaped mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.face_align import estimate_norm, estimate_similarity, invert_affine
from pipelines.types import ImageRGB, Keypoints5, Mask


def face_mask(shape: tuple[int, int], kps: Keypoints5, feather: float = 0.08) -> Mask:
    """A feathered ellipse over the face (brows to chin) in image pixels, float32 0..1."""
    height, width = shape
    aligned = np.zeros((128, 128), np.float32)
    cv2.ellipse(aligned, (64, 70), (40, 50), 0, 0, 360, 1.0, -1)
    matrix = estimate_norm(kps, 128)
    mask = cv2.warpAffine(aligned, invert_affine(matrix), (width, height), flags=cv2.INTER_LINEAR)
    size = 100.0 / float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    sigma = max(feather * size, 1.0)
    return np.asarray(cv2.GaussianBlur(mask, (0, 0), sigma), dtype=np.float32)


def colour_transfer(source: ImageRGB, target: ImageRGB, mask: Mask) -> ImageRGB:
    """Match the source's LAB mean and spread to the target's, measured where the mask is on."""
    on = mask > 0.5
    if int(on.sum()) < 16:
        return source
    src = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    s_mean, s_std = src[on].mean(axis=0), src[on].std(axis=0) + 1e-3
    d_mean, d_std = dst[on].mean(axis=0), dst[on].std(axis=0) + 1e-3
    out = (src - s_mean) / s_std * d_std + d_mean
    return np.asarray(cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB), dtype=np.uint8)


def classic_swap(source: ImageRGB, source_kps: Keypoints5, target: ImageRGB, target_kps: Keypoints5) -> ImageRGB:
    """Put the source's face onto the target photo (see the module docstring)."""
    height, width = target.shape[:2]
    # 1. Geometry: the source face warped onto the target's keypoints.
    matrix = estimate_similarity(source_kps, target_kps)
    warped = cv2.warpAffine(source, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # 2. Colour: match the target's skin statistics inside the mask.
    mask = face_mask((height, width), target_kps)
    warped = colour_transfer(np.asarray(warped, dtype=np.uint8), target, mask)
    # 3. Blend through the feathered mask.
    weights = mask[:, :, None]
    out = warped.astype(np.float32) * weights + target.astype(np.float32) * (1.0 - weights)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
