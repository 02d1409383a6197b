"""Self-blended pseudo-fakes with inswapper's geometry (the training data of the detector).

The idea (self-blended images, Shiohara & Yamasaki, CVPR 2022, re-implemented from the paper's
description): make a "fake" from one real photo by blending a slightly altered copy of the face back
into itself. Instead of SBI's face-hull masks we use the geometry of the swap we want to catch:

1. align the face to the 128 px ArcFace frame (as the swapper's input),
2. degrade the 128 px crop (resample, blur or sharpen, colour jitter, a little geometric jitter),
3. warp it back bilinearly and blend it through the paste-back mask: a white square in the aligned
   frame, warped back, eroded by about size/10 and Gaussian-blurred (about size/20), with a random
   blend ratio,
4. apply the SAME JPEG and colour augmentation to the real photo and to its pseudo-fake.

Every random choice comes from the `numpy.random.Generator` passed in, so a seed reproduces a set.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.face_align import estimate_norm, invert_affine, transform_points
from pipelines.types import ImageRGB, Keypoints5, Mask, Matrix2x3

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
"""Blend ratios drawn uniformly (SBI's choice: mostly a full paste)."""


@dataclass(frozen=True)
class PseudoFakePair:
    """A real photo and its pseudo-fake (labels 0 and 1), sharing the same post-processing."""

    real: ImageRGB
    fake: ImageRGB
    mask: Mask  # the blend weights actually used, in image pixels
    kps: Keypoints5  # keypoints of the face in both images


def paste_back_mask(
    shape: tuple[int, int], matrix_128: Matrix2x3, erode_frac: float = 0.1, blur_frac: float = 0.05
) -> Mask:
    """The insightface-style paste-back mask in image pixels (float32, 0..1).

    A white 128 px square in the aligned frame warped back into the image, eroded by
    max(size * erode_frac, 10) and blurred with a Gaussian of kernel 2 * max(size * blur_frac, 5) + 1,
    where size is the square's footprint in the image.
    """
    height, width = shape
    white = np.full((128, 128), 255, dtype=np.float32)
    warped = cv2.warpAffine(white, invert_affine(matrix_128), (width, height), flags=cv2.INTER_LINEAR)
    warped = np.where(warped > 20, 255.0, 0.0).astype(np.float32)
    rows, cols = np.nonzero(warped)
    if rows.size == 0:
        return np.zeros((height, width), dtype=np.float32)
    size = int(np.sqrt(max(int(rows.max() - rows.min()), 1) * max(int(cols.max() - cols.min()), 1)))
    k = max(int(size * erode_frac), 10)
    eroded = cv2.erode(warped, np.ones((k, k), np.uint8), iterations=1)
    b = max(int(size * blur_frac), 5)
    blurred = cv2.GaussianBlur(eroded, (2 * b + 1, 2 * b + 1), 0)
    return (blurred / 255.0).astype(np.float32)


def oval_mask(shape: tuple[int, int], matrix_128: Matrix2x3, rng: np.random.Generator) -> Mask:
    """A feathered, randomly sized face oval in image pixels (SBI's face-hull style mask, for variety)."""
    height, width = shape
    aligned = np.zeros((128, 128), np.float32)
    axes = (int(rng.uniform(34, 46)), int(rng.uniform(42, 56)))
    cv2.ellipse(aligned, (64, int(rng.uniform(64, 74))), axes, 0, 0, 360, 1.0, -1)
    aligned = np.asarray(cv2.GaussianBlur(aligned, (0, 0), rng.uniform(2.0, 10.0)), dtype=np.float32)
    return np.asarray(cv2.warpAffine(aligned, invert_affine(matrix_128), (width, height), flags=cv2.INTER_LINEAR))


def jpeg(image: ImageRGB, quality: int) -> ImageRGB:
    """Round-trip through JPEG at the given quality."""
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    decoded = np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)
    return np.ascontiguousarray(decoded[:, :, ::-1])


def _colour_jitter(crop: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """SBI-style colour changes on a float RGB crop (0..255)."""
    out = crop
    if rng.random() < 0.3:
        out = out + rng.uniform(-20, 20, size=3).astype(np.float32)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[:, :, 0] = (hsv[:, :, 0] + rng.uniform(-8, 8)) % 180
        hsv[:, :, 1] *= rng.uniform(0.75, 1.25)
        hsv[:, :, 2] *= rng.uniform(0.85, 1.15)
        out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < 0.5:
        contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(-0.1, 0.1) * 255
        out = (out - 128.0) * contrast + 128.0 + brightness
    return out


def degrade_crop(crop: ImageRGB, rng: np.random.Generator) -> ImageRGB:
    """What a 128 px generator does to a face: no detail above its grid, plus colour drift."""
    out = crop.astype(np.float32)
    # 1. Resolution: resample below 128 and back, blur, or (rarely) sharpen.
    choice = rng.random()
    if choice < 0.5:
        side = int(rng.uniform(56, 112))
        small = cv2.resize(out, (side, side), interpolation=cv2.INTER_AREA)
        out = np.asarray(cv2.resize(small, (128, 128), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    elif choice < 0.85:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.3)), dtype=np.float32)
    else:
        blurred = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = out + rng.uniform(0.3, 1.0) * (out - blurred)
    # 2. Colour and lighting drift (a generated face can be lit from a slightly different side).
    out = _colour_jitter(out, rng)
    if rng.random() < 0.5:
        ramp = np.linspace(-1.0, 1.0, 128, dtype=np.float32)
        gx, gy = rng.uniform(-0.15, 0.15, size=2)
        out = out * (1.0 + gx * ramp[None, :, None] + gy * ramp[:, None, None])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def make_pseudo_fake(
    image: ImageRGB,
    kps: Keypoints5,
    rng: np.random.Generator,
    jpeg_probability: float = 0.7,
    oval_probability: float = 0.0,
) -> PseudoFakePair:
    """A real photo and its self-blended pseudo-fake (same JPEG on both; see the module docstring)."""
    height, width = image.shape[:2]
    # 1. Align at 128 px exactly as the swapper's input, and degrade the crop.
    m128 = estimate_norm(kps, 128)
    crop = cv2.warpAffine(image, m128, (128, 128), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    altered = degrade_crop(np.asarray(crop, dtype=np.uint8), rng)
    # 2. Warp it back with a little geometric jitter (the generated face never lands exactly).
    use_oval = rng.random() < oval_probability
    strength = 2.5 if use_oval else 1.0  # face-shaped blends stand in for another face: misalign more
    jitter = np.eye(3)
    scale = 1.0 + rng.uniform(-0.03, 0.03) * strength
    shift = rng.uniform(-1.5, 1.5, size=2) * strength
    jitter[:2, :2] *= scale
    jitter[:2, 2] = (1.0 - scale) * 64.0 + shift
    back = invert_affine(m128) @ jitter
    pasted = cv2.warpAffine(altered, back, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # 3. The paste-back mask, with jittered erosion and blur, and a random blend ratio.
    if use_oval:
        mask = oval_mask((height, width), m128, rng)
    else:
        mask = paste_back_mask((height, width), m128, rng.uniform(0.07, 0.13), rng.uniform(0.035, 0.07))
    mask = mask * float(rng.choice(BLEND_RATIOS))
    weights = mask[:, :, None]
    fake = (pasted.astype(np.float32) * weights + image.astype(np.float32) * (1.0 - weights) + 0.5).astype(np.uint8)
    # 4. The same post-processing on both.
    real = image
    if rng.random() < jpeg_probability:
        quality = int(rng.integers(50, 101))
        real, fake = jpeg(real, quality), jpeg(fake, quality)
    return PseudoFakePair(real, fake, mask, np.asarray(kps, np.float32))


def rescale_face(
    image: ImageRGB, kps: Keypoints5, box: tuple[float, float, float, float], target_size: float, flip: bool = False
) -> tuple[ImageRGB, Keypoints5]:
    """Crop a generous region around a face and resize it so the face is about `target_size` px.

    Returns the new image and the keypoints moved into it (mirrored, with left/right swapped, if `flip`).
    """
    x1, y1, x2, y2 = box
    size = float(np.sqrt(max(x2 - x1, 1.0) * max(y2 - y1, 1.0)))
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    half = 1.6 * size
    h, w = image.shape[:2]
    left, top = int(max(cx - half, 0)), int(max(cy - half, 0))
    right, bottom = int(min(cx + half, w)), int(min(cy + half, h))
    crop = image[top:bottom, left:right]
    factor = target_size / size
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    out = (
        crop.copy() if abs(factor - 1.0) < 1e-6 else cv2.resize(crop, None, fx=factor, fy=factor, interpolation=interp)
    )
    fx, fy = out.shape[1] / crop.shape[1], out.shape[0] / crop.shape[0]
    moved = np.asarray(kps, np.float64) - np.array([left, top])
    moved = moved * np.array([fx, fy])
    if flip:
        out = out[:, ::-1]
        moved[:, 0] = out.shape[1] - 1 - moved[:, 0]
        moved = moved[[1, 0, 2, 4, 3]]
    return np.ascontiguousarray(out), moved.astype(np.float32)


def square_footprint(kps: Keypoints5) -> NDArray[np.float32]:
    """The 4 corners of the swapper's 128 px square in image pixels (for drawing and tests)."""
    corners = np.array([[0, 0], [128, 0], [128, 128], [0, 128]], dtype=np.float64)
    return transform_points(corners, invert_affine(estimate_norm(kps, 128)))


# ---------------------------------------------------------------------------------------------------------
# Two-identity blends (Face X-ray idea: a blend of two REAL faces, so the seam is the evidence)
# ---------------------------------------------------------------------------------------------------------
#
# Deliberately different from the evaluation's classic swap (cheapfake.py: direct similarity warp from the
# source photo, LAB mean / spread match, one fixed feathered ellipse): here the donor passes through an
# aligned crop of random resolution, lands with pose jitter, gets a partial RGB statistics match measured
# on the two faces' own cores, and is blended through a random, irregular face-hull polygon with a random
# erosion / dilation and blur.


def hull_mask(shape: tuple[int, int], matrix_128: Matrix2x3, rng: np.random.Generator) -> Mask:
    """A random face-hull polygon (brows-to-chin region, irregular radius) in image pixels, float32 0..1.

    12-20 points around a centre in the 128 frame with a radius that wobbles by +-12 %, their convex hull
    filled, eroded or dilated by up to 4 units and blurred with sigma 1.5-9 units; then warped back.
    """
    height, width = shape
    count = int(rng.integers(12, 21))
    angles = np.sort(rng.uniform(0.0, 2.0 * np.pi, size=count))
    cx, cy = 64.0 + rng.uniform(-3, 3), rng.uniform(62, 76)
    rx, ry = rng.uniform(32, 48), rng.uniform(40, 58)
    wobble = rng.uniform(0.88, 1.12, size=count)
    points = np.stack([cx + rx * wobble * np.cos(angles), cy + ry * wobble * np.sin(angles)], axis=1)
    hull = cv2.convexHull(np.round(points * 4).astype(np.int32))
    aligned = np.zeros((512, 512), np.float32)  # 4x the 128 frame, for smooth edges
    cv2.fillConvexPoly(aligned, hull, 1.0)
    aligned = np.asarray(cv2.resize(aligned, (128, 128), interpolation=cv2.INTER_AREA), np.float32)
    grow = int(rng.integers(-4, 5))
    if grow:
        kernel = np.ones((2 * abs(grow) + 1, 2 * abs(grow) + 1), np.uint8)
        aligned = np.asarray((cv2.dilate if grow > 0 else cv2.erode)(aligned, kernel), np.float32)
    aligned = np.asarray(cv2.GaussianBlur(aligned, (0, 0), rng.uniform(1.5, 9.0)), np.float32)
    return np.asarray(cv2.warpAffine(aligned, invert_affine(matrix_128), (width, height), flags=cv2.INTER_LINEAR))


def match_rgb_statistics(
    donor: NDArray[np.float32], target: ImageRGB, donor_on: NDArray[np.bool_], target_on: NDArray[np.bool_]
) -> NDArray[np.float32]:
    """Per RGB channel: the donor's mean and spread over `donor_on` moved to the target's over `target_on`."""
    if int(donor_on.sum()) < 16 or int(target_on.sum()) < 16:
        return donor
    d_px, t_px = donor[donor_on], target[target_on].astype(np.float32)
    gain = np.clip((t_px.std(axis=0) + 1e-3) / (d_px.std(axis=0) + 1e-3), 0.5, 2.0)
    return np.asarray((donor - d_px.mean(axis=0)) * gain + t_px.mean(axis=0), np.float32)


def make_identity_blend(
    image: ImageRGB,
    kps: Keypoints5,
    donor: ImageRGB,
    donor_kps: Keypoints5,
    rng: np.random.Generator,
    jpeg_probability: float = 0.7,
    colour_strength: tuple[float, float] = (0.5, 1.0),
) -> PseudoFakePair:
    """A real photo and a blend of ANOTHER real person's face into it (same JPEG on both).

    1. the donor face is cropped in its aligned frame at a random resolution (64-320 px) and warped onto
       the target's keypoints with pose jitter (scale +-4 %, rotation +-3 deg, shift +-2.5 units);
    2. its RGB mean / spread (measured on the donor's and the target's face cores) move towards the
       target's by a random strength drawn from `colour_strength` (default 0.5-1);
    3. it is blended through `hull_mask` times a blend ratio from {0.7, 0.85, 1, 1}.
    """
    height, width = image.shape[:2]
    m128 = estimate_norm(kps, 128)
    # 1. Donor crop in its own aligned frame, then into the target's frame with jitter.
    side = int(rng.integers(64, 321))
    d_matrix = estimate_norm(donor_kps, 128) * (side / 128.0)
    crop = cv2.warpAffine(donor, d_matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    scale = 1.0 + rng.uniform(-0.04, 0.04)
    jitter = np.eye(3)
    jitter[:2, :2] = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    jitter[:2, 2] = np.array([64.0, 64.0]) - jitter[:2, :2] @ np.array([64.0, 64.0]) + rng.uniform(-2.5, 2.5, size=2)
    crop_to_128 = np.array([[128.0 / side, 0.0, 0.0], [0.0, 128.0 / side, 0.0], [0.0, 0.0, 1.0]])
    to_image = np.vstack([invert_affine(m128), [0.0, 0.0, 1.0]]) @ jitter @ crop_to_128
    warped = cv2.warpAffine(crop, to_image[:2], (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # 2. Partial colour match on the face cores (a fixed central box of the 128 frame).
    core = np.zeros((128, 128), np.float32)
    core[40:100, 36:92] = 1.0
    target_on = cv2.warpAffine(core, invert_affine(m128), (width, height)) > 0.5
    moved = match_rgb_statistics(warped.astype(np.float32), image, target_on, target_on)
    strength = rng.uniform(*colour_strength)
    face = warped.astype(np.float32) * (1.0 - strength) + moved * strength
    # 3. Blend through a random face hull.
    mask = hull_mask((height, width), m128, rng) * float(rng.choice((0.7, 0.85, 1.0, 1.0)))
    weights = mask[:, :, None]
    fake = np.clip(face * weights + image.astype(np.float32) * (1.0 - weights) + 0.5, 0, 255).astype(np.uint8)
    real = image
    if rng.random() < jpeg_probability:
        quality = int(rng.integers(50, 101))
        real, fake = jpeg(real, quality), jpeg(fake, quality)
    return PseudoFakePair(real, fake, mask.astype(np.float32), np.asarray(kps, np.float32))
