"""The `classic` engine: no neural generator, only geometry, colour statistics and blending.

The source face, aligned once to the ArcFace template at 256 px, is warped onto each target face through
the same template (a similarity transform from the 5 keypoints), its colours are moved to the target's
(LAB mean and standard deviation inside the face), and it is blended with a feathered, face-shaped
ellipse (optionally after Poisson blending with `cv2.seamlessClone`). It needs only a face detector; a
recognizer is needed only to pick target faces by reference. Licence-clean: no third-party weights.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from pipelines.errors import InputError
from pipelines.face_align import estimate_norm, invert_affine
from pipelines.paste_back import Patch, blend, compose, mouth_keep_mask, region_of, shift_matrix, transfer_colour
from pipelines.swap_engines import ALIGNED_SIZE, PreparedSource, SourceIdentity
from pipelines.types import EngineName, Face, ImageRGB, Mask, SwapSettings

FACE_ELLIPSE = ((128.0, 150.0), (64.0, 80.0))
"""Centre and semi-axes, in the 256 px aligned frame, of the face region (brows to chin, cheek to cheek)."""

FEATHER_SIGMA = 7.0
"""Gaussian sigma (aligned pixels) of the mask's soft edge."""


@functools.lru_cache(maxsize=1)
def face_mask() -> tuple[Mask, tuple[int, int, int, int]]:
    """The feathered face ellipse in the aligned frame (read-only) and its bounding box (x0, y0, x1, y1)."""
    (cx, cy), (ax, ay) = FACE_ELLIPSE
    mask = np.zeros((ALIGNED_SIZE, ALIGNED_SIZE), np.float32)
    cv2.ellipse(mask, (round(cx), round(cy)), (round(ax), round(ay)), 0, 0, 360, 1.0, thickness=-1)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), FEATHER_SIGMA), np.float32)
    mask.setflags(write=False)
    reach = 3 * FEATHER_SIGMA
    box = (
        max(int(cx - ax - reach), 0),
        max(int(cy - ay - reach), 0),
        min(int(cx + ax + reach) + 1, ALIGNED_SIZE),
        min(int(cy + ay + reach) + 1, ALIGNED_SIZE),
    )
    return mask, box


class ClassicEngine:
    """Stateless; one instance serves every user and thread."""

    name: EngineName = "classic"
    needs_recognizer = False

    def prepare_source(self, identity: SourceIdentity) -> PreparedSource:
        """The source's aligned face crop (computed when the identity was built)."""
        if identity.aligned.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise InputError("The source face could not be aligned.")
        return PreparedSource(engine=self.name, aligned=identity.aligned)

    def swap(self, frame: ImageRGB, target: Face, source: PreparedSource, settings: SwapSettings) -> Patch | None:
        """1. geometry -> 2. warp source and mask into the ROI -> 3. colour -> 4. blend."""
        if source.aligned is None:
            raise ValueError("this source was not prepared by the classic engine")
        # 1. Aligned frame -> target frame, and the face region's box in the target frame.
        to_frame = invert_affine(estimate_norm(target.kps, ALIGNED_SIZE))
        mask, (bx0, by0, bx1, by1) = face_mask()
        box_to_frame = compose(to_frame, np.array([[1.0, 0.0, bx0], [0.0, 1.0, by0]]))
        roi = region_of(box_to_frame, bx1 - bx0, by1 - by0, frame.shape)
        if roi is None:
            return None
        x0, y0, x1, y1 = roi
        size = (x1 - x0, y1 - y0)
        # 2. The source face and the mask, warped into the ROI only.
        into_roi = shift_matrix(to_frame, x0, y0)
        warped = cv2.warpAffine(source.aligned, into_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weights = np.asarray(cv2.warpAffine(mask, into_roi, size, flags=cv2.INTER_LINEAR, borderValue=0.0), np.float32)
        background = frame[y0:y1, x0:x1]
        # 3. Colour: the source's LAB statistics become the target's, measured inside the face.
        warped = transfer_colour(np.asarray(warped, np.uint8), background, weights)
        if settings.mouth_mask:
            weights = weights * (1.0 - mouth_keep_mask(target, roi))
        # 4. Blend: optional Poisson first (gradients of the source, boundary of the target), then feather.
        if settings.poisson:
            warped = _poisson(warped, background, weights)
        return Patch(x0, y0, blend(warped, background, weights))


def _poisson(face: ImageRGB, background: ImageRGB, weights: Mask) -> ImageRGB:
    """cv2.seamlessClone of the face's core into the background; unchanged when the core is too small."""
    core = (weights > 0.5).astype(np.uint8) * 255
    core[:2, :] = 0
    core[-2:, :] = 0
    core[:, :2] = 0
    core[:, -2:] = 0
    x, y, w, h = cv2.boundingRect(core)
    if w < 8 or h < 8:
        return face
    centre = (x + w // 2, y + h // 2)
    try:
        cloned = cv2.seamlessClone(face, np.ascontiguousarray(background), core, centre, cv2.NORMAL_CLONE)
    except cv2.error:
        return face
    return np.asarray(cloned, np.uint8)
