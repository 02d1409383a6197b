"""Paste a swapped face back into the frame, touching only the face's own region.

InsightFace's `INSwapper.get(paste_back=True)` warps the 128 px result, a white square and a difference
map over the WHOLE frame, erodes and blurs the square there, and blends the whole frame in float32. The
result here has the same geometry (same warp, same eroded and blurred square) but:
- every warp writes only into the region of interest (ROI): the bounding box of the aligned square in the
  frame, found by composing the inverse alignment matrix with a translation;
- the feathered square is built once per face size (and turn) in its own axis-aligned frame, erosion and
  blur applied analytically (both are separable there), cached in a bounded, thread-safe LRU that holds
  no user data, then warped into the ROI with the same matrix as the face. Only a face cut by the frame's
  edge gets InsightFace's recipe run inside its ROI (InsightFace's erosion treats the outside as white).

Measured against InsightFace on the same swapper output (tests/test_swap_paste_back.py): mean absolute
difference 0-1.1 grey levels over the changed pixels, at most 12; the rest is InsightFace snapping its
square to the frame's pixel grid before eroding it.

Everything is a pure function of its arguments; the result of a paste is a `Patch` the caller writes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.face_align import invert_affine, transform_points
from pipelines.types import Face, ImageRGB, Mask, Matrix2x3

WHITE_EDGE = 20.0 / 255.0
"""InsightFace thresholds its warped white square at 20/255: the square reaches this far past its pixels."""

MASK_CACHE_SIZE = 48
"""At most this many feathered squares are kept (each at most about 1.4 MB)."""

MAX_MASK_SIDE = 512
"""Larger faces get their (smooth) mask built at this side and upsampled by the warp."""

MAX_STD_GAIN = 1.5
"""Colour transfer scales each LAB channel's spread by at most this factor (or 1/this)."""

MOUTH_106 = tuple(range(52, 72))
"""Mouth outline and lips in the 2d106det markup (checked against the 5 keypoints before use)."""


@dataclass(frozen=True)
class Patch:
    """Finished pixels for one face: `pixels` replaces `frame[y0:y0 + h, x0:x0 + w]`."""

    x0: int
    y0: int
    pixels: ImageRGB

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in frame pixels."""
        height, width = self.pixels.shape[:2]
        return self.x0, self.y0, self.x0 + width, self.y0 + height

    def apply(self, frame: ImageRGB) -> None:
        """Write the patch into `frame` (in place)."""
        x0, y0, x1, y1 = self.box
        frame[y0:y1, x0:x1] = self.pixels


# ---------------------------------------------------------------------------------------------------------
# Regions and matrices
# ---------------------------------------------------------------------------------------------------------


def shift_matrix(matrix: Matrix2x3, x0: float, y0: float) -> Matrix2x3:
    """`matrix` followed by a translation by (-x0, -y0): maps into an ROI whose corner is (x0, y0)."""
    shifted = np.array(matrix, dtype=np.float64, copy=True)
    shifted[0, 2] -= x0
    shifted[1, 2] -= y0
    return shifted


def region_of(
    to_frame: Matrix2x3, width: float, height: float, frame_shape: tuple[int, ...], margin: int = 2
) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), clipped to the frame, of a `width` x `height` source warped by `to_frame`.

    Returns None when it lies entirely outside the frame.
    """
    corners = np.array([[-1.0, -1.0], [width, -1.0], [width, height], [-1.0, height]])
    points = transform_points(corners, to_frame)
    x0 = max(math.floor(float(points[:, 0].min())) - margin, 0)
    y0 = max(math.floor(float(points[:, 1].min())) - margin, 0)
    x1 = min(math.ceil(float(points[:, 0].max())) + margin + 1, frame_shape[1])
    y1 = min(math.ceil(float(points[:, 1].max())) + margin + 1, frame_shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


# ---------------------------------------------------------------------------------------------------------
# The feathered square (InsightFace's mask), cached per face size
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatherRecipe:
    """What the feathered square looks like in its own frame; hashable, so it keys the mask cache."""

    side: int  # canvas cells across the square (about one frame pixel each)
    insets: tuple[int, int, int, int]  # erosion of the left, top, right, bottom edge, in quarter cells
    ksize: int  # Gaussian kernel size in cells (odd)
    sigma: float  # Gaussian sigma in cells, rounded to 1/100


def insightface_kernel_sizes(to_frame: Matrix2x3, size: int, frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(erosion kernel k, blur half-size b) from the warped square's bounding box, as InsightFace measures it."""
    lo, hi = -1.0 + WHITE_EDGE, size - WHITE_EDGE
    corners = transform_points(np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]]), to_frame)
    xs = np.clip(corners[:, 0], -0.5, frame_shape[1] - 0.5)  # InsightFace measures what lies in the frame
    ys = np.clip(corners[:, 1], -0.5, frame_shape[0] - 0.5)
    box_w, box_h = float(xs.max() - xs.min()), float(ys.max() - ys.min())
    mask_size = int(math.sqrt(max(box_w - 1.0, 1.0) * max(box_h - 1.0, 1.0)))
    return max(mask_size // 10, 10), max(mask_size // 20, 5)


def feather_recipe(to_frame: Matrix2x3, size: int, frame_shape: tuple[int, ...]) -> FeatherRecipe:
    """InsightFace's mask parameters for a `size` px aligned crop placed in the frame by `to_frame`.

    1. InsightFace measures the warped square's bounding box in the frame (`mask_size`, the geometric
       mean of its sides), erodes by an axis-aligned k x k kernel, k = max(mask_size // 10, 10), and blurs
       with a (2b+1) Gaussian, b = max(mask_size // 20, 5). The box comes from the corners here.
    2. Eroding by that kernel moves each edge of the (possibly turned) square inwards by the kernel's
       support along the edge's normal: k//2 on the left/top and k-1-k//2 on the right/bottom when upright.
    3. Very large faces get a capped canvas; insets and blur are scaled to its cells.
    """
    # 1. The kernel sizes, as InsightFace derives them.
    k, b = insightface_kernel_sizes(to_frame, size, frame_shape)
    lo, hi = -1.0 + WHITE_EDGE, size - WHITE_EDGE
    # 2. Edge insets: support of the kernel's offsets [-c, k-1-c]^2 along each outward normal.
    scale = math.sqrt(abs(float(np.linalg.det(to_frame[:, :2]))))
    axis_u, axis_v = to_frame[:, 0] / scale, to_frame[:, 1] / scale
    c = k // 2

    def support(normal: np.ndarray) -> float:
        return sum(max(float(n) * (k - 1 - c), -float(n) * c) for n in normal)

    insets_px = (support(-axis_u), support(-axis_v), support(axis_u), support(axis_v))
    sigma_px = 0.3 * (b - 1) + 0.8  # OpenCV's sigma for a (2b+1) kernel when sigma = 0
    # 3. Canvas cells: one per frame pixel, or fewer for very large faces.
    side_px = (hi - lo) * scale
    side = min(max(int(round(side_px)), 8), MAX_MASK_SIDE)
    cell = side_px / side
    ksize = 2 * max(int(round(b / cell)), 1) + 1
    insets = tuple(int(round(4 * v / cell)) for v in insets_px)
    return FeatherRecipe(side, (insets[0], insets[1], insets[2], insets[3]), ksize, round(sigma_px / cell, 2))


def _edge_profile(length: int, pad: int, inset_lo: float, inset_hi: float) -> np.ndarray:
    """Coverage of each canvas cell by the interval [inset_lo, length - inset_hi] (cells start at -pad)."""
    left = np.arange(length + 2 * pad, dtype=np.float64) - pad
    return np.clip(np.minimum(left + 1, length - inset_hi) - np.maximum(left, inset_lo), 0.0, 1.0)


@functools.lru_cache(maxsize=MASK_CACHE_SIZE)
def feathered_square(recipe: FeatherRecipe) -> tuple[Mask, int]:
    """The eroded, blurred square of `recipe` on a zero-padded canvas, and the padding in cells.

    Built from two blurred 1-D edge profiles (a rectangle and a Gaussian are both separable). Read-only:
    the bounded, thread-safe `functools.lru_cache` shares it between callers; it holds no user data.
    """
    pad = recipe.ksize // 2 + 2
    kernel = cv2.getGaussianKernel(recipe.ksize, recipe.sigma).reshape(-1)
    left, top, right, bottom = (v / 4.0 for v in recipe.insets)
    cols = np.convolve(_edge_profile(recipe.side, pad, left, right), kernel, mode="same")
    rows = np.convolve(_edge_profile(recipe.side, pad, top, bottom), kernel, mode="same")
    canvas = np.outer(rows, cols).astype(np.float32)
    canvas.setflags(write=False)
    return canvas, pad


def square_mask_in_roi(
    to_frame: Matrix2x3, size: int, roi: tuple[int, int, int, int], frame_shape: tuple[int, ...]
) -> Mask:
    """InsightFace's eroded, blurred square for an aligned `size` px crop, rendered into the ROI only.

    Faces inside the frame (the usual case) use the cached mask; a face cut by the frame's edge gets its
    mask built in the ROI, because InsightFace's erosion treats the outside of the frame as white.
    """
    if _cut_by_frame(to_frame, size, frame_shape):
        return _square_mask_at_edge(to_frame, size, roi, frame_shape)
    # 1. The cached mask for this face size (and turn).
    recipe = feather_recipe(to_frame, size, frame_shape)
    canvas, pad = feathered_square(recipe)
    # 2. Canvas cell centre c sits at aligned coordinate lo + (c - pad + 0.5) * step.
    lo, hi = -1.0 + WHITE_EDGE, size - WHITE_EDGE
    step = (hi - lo) / recipe.side
    offset = lo + (0.5 - pad) * step
    canvas_to_frame = compose(to_frame, np.array([[step, 0.0, offset], [0.0, step, offset]]))
    # 3. One warp, into the ROI only.
    x0, y0, x1, y1 = roi
    matrix = shift_matrix(canvas_to_frame, x0, y0)
    return np.asarray(
        cv2.warpAffine(canvas, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0.0), np.float32
    )


def _cut_by_frame(to_frame: Matrix2x3, size: int, frame_shape: tuple[int, ...]) -> bool:
    """True when part of the white square (plus one pixel) falls outside the frame."""
    lo, hi = -2.0, size + 1.0
    corners = transform_points(np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]]), to_frame)
    return bool(
        corners[:, 0].min() < 0
        or corners[:, 1].min() < 0
        or corners[:, 0].max() > frame_shape[1] - 1
        or corners[:, 1].max() > frame_shape[0] - 1
    )


def _square_mask_at_edge(
    to_frame: Matrix2x3, size: int, roi: tuple[int, int, int, int], frame_shape: tuple[int, ...]
) -> Mask:
    """InsightFace's recipe (warp, threshold, erode, blur) done in the ROI, for faces cut by the frame."""
    k, b = insightface_kernel_sizes(to_frame, size, frame_shape)
    x0, y0, x1, y1 = roi
    white = np.full((size, size), 1.0, np.float32)
    warped = cv2.warpAffine(white, shift_matrix(to_frame, x0, y0), (x1 - x0, y1 - y0), borderValue=0.0)
    warped = np.where(warped > WHITE_EDGE, 1.0, warped).astype(np.float32)
    warped = cv2.erode(warped, np.ones((k, k), np.uint8), iterations=1)
    return np.asarray(cv2.GaussianBlur(warped, (2 * b + 1, 2 * b + 1), 0), np.float32)


def compose(outer: Matrix2x3, inner: Matrix2x3) -> Matrix2x3:
    """The 2x3 matrix of `outer` applied after `inner`."""
    linear = outer[:, :2] @ inner[:, :2]
    offset = outer[:, :2] @ inner[:, 2] + outer[:, 2]
    return np.asarray(np.hstack([linear, offset[:, None]]), np.float64)


# ---------------------------------------------------------------------------------------------------------
# Colour and mouth
# ---------------------------------------------------------------------------------------------------------


def transfer_colour(source: ImageRGB, target: ImageRGB, weights: Mask, threshold: float = 0.5) -> ImageRGB:
    """Move `source`'s LAB mean and standard deviation to `target`'s, measured where `weights` >= threshold."""
    inside = weights >= threshold
    if int(inside.sum()) < 16:
        return source
    src_lab = cv2.cvtColor(source, cv2.COLOR_RGB2LAB).astype(np.float32)
    dst_lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB).astype(np.float32)
    src_px, dst_px = src_lab[inside], dst_lab[inside]
    src_mean, src_std = src_px.mean(axis=0), src_px.std(axis=0) + 1e-3
    dst_mean, dst_std = dst_px.mean(axis=0), dst_px.std(axis=0) + 1e-3
    # Bounded contrast change: a flat source next to a colourful target (red lips, make-up) would
    # otherwise get its small colour deviations (eyes, a hair strand) blown up into false colours.
    gain = np.clip(dst_std / src_std, 1.0 / MAX_STD_GAIN, MAX_STD_GAIN)
    moved = (src_lab - src_mean) * gain + dst_mean
    return np.asarray(cv2.cvtColor(np.clip(moved, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB), np.uint8)


def transfer_colour_aligned(face_crop: ImageRGB, target_crop: ImageRGB, margin: float = 0.1) -> ImageRGB:
    """`transfer_colour` between two aligned square crops, measured inside the square where the pasted face
    is solid (the feathered mask reaches 0.5 about a tenth of the side in from the edge)."""
    size = face_crop.shape[0]
    inset = int(round(size * margin))
    weights = np.zeros(face_crop.shape[:2], np.float32)
    weights[inset : size - inset, inset : size - inset] = 1.0
    return transfer_colour(face_crop, target_crop, weights)


def mouth_polygon(face: Face) -> NDArray[np.float32]:
    """The mouth outline in frame pixels: 106-point lips when present and plausible, else from the 5 keypoints."""
    left, right = face.kps[3].astype(np.float64), face.kps[4].astype(np.float64)
    centre = (left + right) / 2
    width = float(np.linalg.norm(right - left))
    if face.landmarks_106 is not None:
        lips = np.asarray(face.landmarks_106, np.float32)[list(MOUTH_106)]
        if float(np.linalg.norm(lips.mean(axis=0) - centre)) < 0.5 * max(width, 1.0):
            return np.asarray(cv2.convexHull(lips).reshape(-1, 2), np.float32)
    # 5 keypoints: an ellipse through both mouth corners, a third as tall as wide, along the mouth line.
    angle = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
    axes = (max(int(round(width * 0.6)), 1), max(int(round(width * 0.3)), 1))
    ellipse = cv2.ellipse2Poly((int(round(centre[0])), int(round(centre[1]))), axes, int(round(angle)), 0, 360, 10)
    return np.asarray(ellipse, np.float32)


def mouth_keep_mask(face: Face, roi: tuple[int, int, int, int]) -> Mask:
    """1 where the target's own mouth must stay (feathered), 0 elsewhere, in ROI pixels."""
    x0, y0, x1, y1 = roi
    polygon = mouth_polygon(face) - np.array([x0, y0], np.float32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    feather = max(int(round(float(np.linalg.norm(face.kps[4] - face.kps[3])) * 0.1)), 1)
    grown = cv2.dilate(mask, np.ones((feather, feather), np.uint8))
    blurred = cv2.GaussianBlur(grown.astype(np.float32) / 255.0, (2 * feather + 1, 2 * feather + 1), 0)
    return np.asarray(blurred, np.float32)


# ---------------------------------------------------------------------------------------------------------
# Blending
# ---------------------------------------------------------------------------------------------------------


def blend(face: ImageRGB, background: ImageRGB, weights: Mask) -> ImageRGB:
    """weights * face + (1 - weights) * background, truncated to uint8 (InsightFace's rounding)."""
    alpha = weights[:, :, None]
    merged = alpha * face + (1.0 - alpha) * background.astype(np.float32)
    return np.asarray(merged.astype(np.uint8), np.uint8)


def paste_back(
    frame: ImageRGB,
    face_crop: ImageRGB,
    to_crop: Matrix2x3,
    *,
    colour_correction: bool = False,
    keep_mouth_of: Face | None = None,
) -> Patch | None:
    """Blend an aligned square `face_crop` (made with `to_crop`: frame -> crop) back into its ROI.

    1. ROI = the crop's square mapped into the frame. 2. Warp the crop into the ROI only. 3. The cached
    feathered square, warped into the ROI. 4. Optional colour transfer and mouth keep-out. 5. Blend.
    Returns None when the face lies entirely outside the frame.
    """
    size = face_crop.shape[0]
    to_frame = invert_affine(to_crop)
    # 1. The region of interest.
    roi = region_of(to_frame, size, size, frame.shape)
    if roi is None:
        return None
    x0, y0, x1, y1 = roi
    # 2. The face, warped into the ROI only.
    warped = np.asarray(
        cv2.warpAffine(face_crop, shift_matrix(to_frame, x0, y0), (x1 - x0, y1 - y0), borderValue=0.0), np.uint8
    )
    # 3. The feathered square.
    weights = square_mask_in_roi(to_frame, size, roi, frame.shape)
    background = frame[y0:y1, x0:x1]
    # 4. Options.
    if colour_correction:
        warped = transfer_colour(warped, background, weights)
    if keep_mouth_of is not None:
        weights = weights * (1.0 - mouth_keep_mask(keep_mouth_of, roi))
    # 5. Blend.
    return Patch(x0, y0, blend(warped, background, weights))
