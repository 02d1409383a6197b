"""Per-face forensic signals measured in the swapper's own aligned frame.

A face swap like inswapper regenerates the face at 128x128 in the ArcFace-aligned frame and pastes it
back through an eroded, blurred square mask. Everything here is measured in that frame, so a signal
means the same thing for every face size and pose:

- the *analysis frame* covers the 128-unit square plus a 32-unit margin on every side (192 units),
  sampled at 2 pixels per unit (384 x 384), so the band "above the 128 grid's Nyquist frequency"
  is exactly the detail between one analysis pixel and two;
- *inner* is the core of the square (where a paste-back mask is fully on), *ring* the margin outside
  it (hair, ears, neck, background: pixels a swap never touches);
- every signal is a log-ratio or a difference of the face against its own surroundings, so contrast,
  exposure and JPEG strength largely cancel (real faces vary, the learned model takes the decision).

No model is involved: `extract_signals` is a deterministic function of the image and 5 keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.face_align import estimate_norm, similarity_scale
from pipelines.types import ImageRGB, Keypoints5, Matrix2x3

MARGIN_UNITS = 32.0
"""Context kept around the 128-unit swap square, in aligned units."""
PIXELS_PER_UNIT = 2
"""Analysis resolution: 2 pixels per aligned unit (one 128-grid pixel = 2 x 2 analysis pixels)."""
FRAME_SIZE = int((128 + 2 * MARGIN_UNITS) * PIXELS_PER_UNIT)  # 384
BLOCK = 8
"""Block side (analysis pixels) of the texture-energy grid: 4 aligned units."""
GRID = FRAME_SIZE // BLOCK  # 48 blocks a side
CROP_SIZE = 128
"""Side (pixels) of the whole analysis frame shrunk for the learned texture net (1.5 aligned units a pixel)."""
EPS_ENERGY = 0.25
"""Floor added to energies (8-bit units squared), so flat or tiny faces give ratios near 0, not noise."""

SIGNAL_NAMES: tuple[str, ...] = (
    "detail_vs_surroundings",  # log energy above the 128-grid Nyquist: face core vs the outer ring
    "detail_vs_edge",  # the same, face core vs the band just outside the swap square
    "fine_vs_coarse_detail",  # (fine / coarse detail) in the core vs in the ring: the spectral slope
    "fine_vs_coarse_inside",  # fine / coarse detail in the core alone
    "boundary_fine_step",  # fine / coarse detail just inside vs just outside the square's blend seam
    "noise_vs_surroundings",  # camera grain (flattest blocks) in the core vs the ring
    "boundary_detail_step",  # fine-detail energy just inside vs just outside the square's seam
    "oval_detail_step",  # fine-detail energy just inside vs just outside a face oval (classic blends)
    "oval_noise_step",  # camera grain inside vs outside the face oval
    "oval_fine_step",  # fine / coarse detail inside vs outside the face oval
    "oval_colour_step",  # LAB step across the face oval, local linear trend removed
    "boundary_colour_step",  # chroma step across the square's seam, trend removed
    "boundary_light_step",  # lightness step across the square's seam, trend removed
    "colour_mismatch",  # median LAB of the face core vs the outer ring, in units of the ring's spread
    "full_res_detail",  # detail finer than the analysis frame (photo's own resolution): face core vs the ring
    "context_sharpness",  # context, not evidence: how much fine detail the surroundings have
    "context_fine_vs_coarse",  # context: fine / coarse detail of the surroundings (blur, JPEG)
)
"""The signals, in the order the model consumes them (log-ratios and differences, see the comments)."""


@dataclass(frozen=True)
class FaceSignals:
    """The signals of one face plus what the heatmap, the video flicker and the model need."""

    values: dict[str, float]  # signal name -> value (see SIGNAL_NAMES)
    face_scale: float  # log2(image pixels per aligned unit): 0 = the 128 square is 128 px on screen
    texture: NDArray[np.float32]  # (GRID, GRID) log block energy above the 128-grid Nyquist
    matrix: Matrix2x3  # image pixels -> analysis frame pixels
    crop: NDArray[np.uint8] | None = None  # (CROP_SIZE, CROP_SIZE, 4) see `texture_crop`, for the texture net

    def vector(self) -> NDArray[np.float64]:
        return np.array([self.values[name] for name in SIGNAL_NAMES], dtype=np.float64)


def frame_matrix(kps: Keypoints5) -> Matrix2x3:
    """Image pixels -> analysis frame pixels (the 128 frame shifted by the margin and scaled)."""
    m128 = estimate_norm(np.asarray(kps, dtype=np.float32), 128)
    out = m128 * PIXELS_PER_UNIT
    out[:, 2] += MARGIN_UNITS * PIXELS_PER_UNIT
    return out


def _warp(image: NDArray[np.uint8], matrix: Matrix2x3) -> NDArray[np.uint8]:
    out = cv2.warpAffine(image, matrix, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.asarray(out, dtype=np.uint8)


def warp_to_frame(image: ImageRGB, matrix: Matrix2x3) -> NDArray[np.uint8]:
    """Sample the analysis frame, pre-shrinking large faces with area averaging to avoid aliasing."""
    scale = similarity_scale(matrix)  # frame pixels per image pixel
    if scale >= 0.75:
        return _warp(image, matrix)
    # 1. Crop the frame's footprint (plus a little) from the image.
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [FRAME_SIZE, 0], [0, FRAME_SIZE], [FRAME_SIZE, FRAME_SIZE]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = image.shape[:2]
    x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in pts.min(axis=0))
    x1, y1 = (int(np.ceil(v)) + 2 for v in pts.max(axis=0))
    x1, y1 = min(x1, w), min(y1, h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return _warp(image, matrix)
    crop = image[y0:y1, x0:x1]
    # 2. Shrink the crop to about the frame's resolution, then warp the rest of the way.
    factor = scale / 0.85
    whole = max(int(1.0 / factor), 1)  # area-average by a whole factor first (fast), then by the remainder
    if whole >= 2:  # exact multiples keep OpenCV on its fast integer path
        crop = crop[: crop.shape[0] - crop.shape[0] % whole, : crop.shape[1] - crop.shape[1] % whole]
        shrunk = cv2.resize(crop, (crop.shape[1] // whole, crop.shape[0] // whole), interpolation=cv2.INTER_AREA)
        crop = np.asarray(shrunk, dtype=np.uint8)
    small = np.asarray(
        cv2.resize(crop, None, fx=factor * whole, fy=factor * whole, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    fx = small.shape[1] / (crop.shape[1] * whole)  # small pixels per original image pixel
    fy = small.shape[0] / (crop.shape[0] * whole)
    adjusted = matrix.copy()
    adjusted[:, 0] = matrix[:, 0] / fx
    adjusted[:, 1] = matrix[:, 1] / fy
    adjusted[:, 2] = matrix[:, 2] + matrix[:, 0] * x0 + matrix[:, 1] * y0
    return _warp(small, adjusted)


FULL_RES_MAX_PPU = 4.0
"""Highest resolution (pixels per aligned unit) the full-resolution detail band is measured at."""
FULL_RES_MIN_PPU = 2.4
"""Faces with fewer image pixels per unit than this have no detail finer than the analysis frame: signal 0."""


def full_res_detail(image: ImageRGB, matrix: Matrix2x3) -> float:
    """Log energy of the detail finer than the analysis frame (above 1 cycle per aligned unit, measured at
    the photo's own resolution up to FULL_RES_MAX_PPU), in the face's core vs the outer ring.

    A face pasted from a source aligned at 2 pixels per unit or less (a 256 px aligned crop, a 128 px
    generator) has none of this band, while the hair and background keep it. 0 for small faces.
    """
    ppu = PIXELS_PER_UNIT / similarity_scale(matrix)  # image pixels per aligned unit
    if ppu < FULL_RES_MIN_PPU:
        return 0.0
    # 1. The frame's footprint, in grey, shrunk (area average) to at most FULL_RES_MAX_PPU.
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0], [FRAME_SIZE, 0], [0, FRAME_SIZE], [FRAME_SIZE, FRAME_SIZE]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = image.shape[:2]
    x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in pts.min(axis=0))
    x1, y1 = (min(int(np.ceil(v)) + 2, lim) for v, lim in zip(pts.max(axis=0), (w, h), strict=True))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    grey = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    factor = min(FULL_RES_MAX_PPU / ppu, 1.0)
    if factor < 1.0:
        grey = cv2.resize(grey, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # 2. Into the aligned frame at that resolution (exactly as many pixels per unit as the shrunk photo).
    q = ppu * factor
    side = int(round((128 + 2 * MARGIN_UNITS) * q))
    local = matrix * (q / PIXELS_PER_UNIT)
    local[:, 2] = local[:, 2] + local[:, 0] * x0 + local[:, 1] * y0
    local[:, :2] /= factor
    frame = cv2.warpAffine(grey, local, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    frame = frame.astype(np.float32)
    # 3. What the analysis frame (2 pixels per unit) cannot hold, and its energy per block.
    coarse = cv2.resize(frame, (FRAME_SIZE, FRAME_SIZE), interpolation=cv2.INTER_AREA)
    fine = frame - cv2.resize(coarse, (side, side), interpolation=cv2.INTER_LINEAR)
    energy = np.log(cv2.resize(fine * fine, (GRID, GRID), interpolation=cv2.INTER_AREA) + EPS_ENERGY)
    return float(np.median(energy[OVAL_CORE]) - np.median(energy[REGIONS["ring"]]))


def _region_masks() -> dict[str, NDArray[np.bool_]]:
    """Block-grid regions, by Chebyshev distance (in aligned units) from the swap square's centre."""
    centres = (np.arange(GRID) + 0.5) * BLOCK / PIXELS_PER_UNIT - MARGIN_UNITS  # units
    u, v = np.meshgrid(centres, centres)
    dist = np.maximum(np.abs(u - 64.0), np.abs(v - 64.0))  # 64 = the square's edge
    return {
        "inner": dist <= 44.0,  # mask fully on in a paste-back
        "ring": dist >= 72.0,  # outside the square by 8+ units: never touched by a swap
        "edge_out": (dist >= 66.0) & (dist <= 78.0),  # just outside the square
        "edge_in": (dist >= 42.0) & (dist <= 54.0),  # just inside the blended boundary
    }


REGIONS = _region_masks()


def _oval_radius(n: int) -> NDArray[np.float64]:
    """Elliptical radius of each pixel of an n x n frame grid: 1 on a typical face oval (brows to chin)."""
    centres = (np.arange(n) + 0.5) * (128 + 2 * MARGIN_UNITS) / n - MARGIN_UNITS
    u, v = np.meshgrid(centres, centres)
    return np.asarray(np.sqrt(((u - 64.0) / 40.0) ** 2 + ((v - 70.0) / 50.0) ** 2))


OVAL_GRID = _oval_radius(GRID)
OVAL_LAB = _oval_radius(96)
OVAL_CORE = OVAL_GRID <= 0.7
"""The face's core (eyes, nose, mouth, cheeks): where every kind of swap replaces the pixels."""
OVAL_SHELLS = {
    "in": (OVAL_GRID >= 0.55) & (OVAL_GRID <= 0.85),
    "out": (OVAL_GRID >= 1.1) & (OVAL_GRID <= 1.35),
}


def _profile_steps(lab: NDArray[np.float32]) -> NDArray[np.float64]:
    """Colour step across the square's edge on each side, with the local linear trend removed.

    `lab` is the frame at 1 pixel per 2 units (96 x 96). Returns (4 sides, 3 channels).
    """
    half = lab.shape[0] // 2
    px = 2.0  # units per pixel

    def band(d_lo: float, d_hi: float) -> NDArray[np.float64]:
        # rows at signed distance d (units, positive = inside the square) from the top edge
        r0 = int(round((MARGIN_UNITS + d_lo) / px))
        r1 = int(round((MARGIN_UNITS + d_hi) / px))
        c0, c1 = int(round((MARGIN_UNITS + 20) / px)), int(round((MARGIN_UNITS + 108) / px))
        sides = [
            lab[r0:r1, c0:c1],  # top
            lab[2 * half - r1 : 2 * half - r0, c0:c1],  # bottom
            lab[c0:c1, r0:r1],  # left
            lab[c0:c1, 2 * half - r1 : 2 * half - r0],  # right
        ]
        return np.array([s.reshape(-1, 3).mean(axis=0) for s in sides], dtype=np.float64)

    c_, a_, b_, d_ = band(-26, -16), band(-8, 0), band(14, 22), band(30, 40)
    slope = ((a_ - c_) / 17.0 + (d_ - b_) / 17.0) / 2.0
    return (b_ - a_) - slope * 22.0


def extract_signals(image: ImageRGB, kps: Keypoints5) -> FaceSignals:
    """Measure every per-frame signal of one face (see the module docstring)."""
    # 1. The analysis frame, grey and colour.
    matrix = frame_matrix(kps)
    frame = warp_to_frame(image, matrix)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # 2. Two detail bands: above the 128-grid Nyquist (hf) and the octave below it (mid).
    level1 = cv2.pyrDown(grey)
    level2 = cv2.pyrDown(level1)
    hf = grey - cv2.pyrUp(level1)
    mid = level1 - cv2.pyrUp(level2)
    e_hf = cv2.resize(hf * hf, (GRID, GRID), interpolation=cv2.INTER_AREA) + EPS_ENERGY
    e_mid = cv2.resize(mid * mid, (GRID, GRID), interpolation=cv2.INTER_AREA) + EPS_ENERGY
    abs_hf = cv2.resize(np.abs(hf), (GRID, GRID), interpolation=cv2.INTER_AREA) + 0.1
    log_hf = np.log(e_hf)
    log_mid = np.log(e_mid)

    def med(values: NDArray[np.float32], region: str) -> float:
        return float(np.median(values[REGIONS[region]]))

    # 3. Detail and noise of the face core against its surroundings.
    inner_hf, ring_hf = med(log_hf, "inner"), med(log_hf, "ring")
    slope = log_hf - log_mid
    noise_in = float(np.percentile(abs_hf[REGIONS["inner"]], 20))
    noise_ring = float(np.percentile(abs_hf[REGIONS["ring"]], 20))
    # 4. The blending boundary: detail and colour steps across the square's edge.
    lab = cv2.cvtColor(cv2.resize(frame, (96, 96), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2LAB).astype(np.float32)
    steps = _profile_steps(lab)
    inner_lab = lab[26:70, 26:70].reshape(-1, 3)
    outer = np.ones((96, 96), bool)
    outer[8:88, 8:88] = False
    outer_lab = lab[outer]
    spread = outer_lab.std(axis=0) + 4.0
    mismatch = np.abs(np.median(inner_lab, axis=0) - np.median(outer_lab, axis=0)) / spread
    # 5. The same steps across a face-shaped (oval) boundary, where classic swaps blend.
    shells = [(lo <= OVAL_LAB) & (hi > OVAL_LAB) for lo, hi in ((0.45, 0.65), (0.7, 0.85), (1.1, 1.25), (1.3, 1.5))]
    c_o, a_o, b_o, d_o = (lab[m].mean(axis=0).astype(np.float64) for m in shells)
    oval_step = (b_o - a_o) - 0.5 * ((a_o - c_o) + (d_o - b_o))
    noise_oval_in = float(np.percentile(abs_hf[OVAL_SHELLS["in"]], 20))
    noise_oval_out = float(np.percentile(abs_hf[OVAL_SHELLS["out"]], 20))
    values = {
        "detail_vs_surroundings": inner_hf - ring_hf,
        "detail_vs_edge": inner_hf - med(log_hf, "edge_out"),
        "fine_vs_coarse_detail": med(slope, "inner") - med(slope, "ring"),
        "fine_vs_coarse_inside": med(slope, "inner"),
        "boundary_fine_step": med(slope, "edge_in") - med(slope, "edge_out"),
        "noise_vs_surroundings": float(np.log(noise_in / noise_ring)),
        "boundary_detail_step": med(log_hf, "edge_in") - med(log_hf, "edge_out"),
        "oval_detail_step": float(np.median(log_hf[OVAL_SHELLS["in"]]) - np.median(log_hf[OVAL_SHELLS["out"]])),
        "oval_noise_step": float(np.log(noise_oval_in / noise_oval_out)),
        "oval_fine_step": float(np.median(slope[OVAL_SHELLS["in"]]) - np.median(slope[OVAL_SHELLS["out"]])),
        "oval_colour_step": float(np.log1p(np.abs(oval_step).sum())),
        "boundary_colour_step": float(np.log1p(np.sqrt(np.mean(steps[:, 1] ** 2 + steps[:, 2] ** 2)))),
        "boundary_light_step": float(np.log1p(np.sqrt(np.mean(steps[:, 0] ** 2)))),
        "colour_mismatch": float(np.log1p(mismatch[1:].sum() * 2.0 + mismatch[0])),
        "full_res_detail": full_res_detail(image, matrix),
        "context_sharpness": ring_hf,
        "context_fine_vs_coarse": med(slope, "ring"),
    }
    face_scale = float(np.log2(max(similarity_scale(matrix) ** -1 * PIXELS_PER_UNIT, 1e-3)))
    texture = (log_hf - ring_hf).astype(np.float32)
    return FaceSignals(values, face_scale, texture, matrix, texture_crop(frame, hf))


def texture_crop(frame: NDArray[np.uint8], hf: NDArray[np.float32]) -> NDArray[np.uint8]:
    """The learned texture net's input: the analysis frame shrunk to CROP_SIZE (RGB) plus a 4th channel,
    the local strength of the finest detail (log of |hf| averaged over each crop pixel, 40 per e-fold)."""
    rgb = cv2.resize(frame, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    detail = cv2.resize(np.abs(hf), (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA)
    detail = np.clip(np.log1p(detail) * 40.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.dstack([rgb, detail]), dtype=np.uint8)


def flicker(previous: NDArray[np.float32], current: NDArray[np.float32]) -> float:
    """Frame-to-frame change of fine texture inside the face relative to the surroundings.

    Both inputs are `FaceSignals.texture` grids. A regenerated face's fine texture changes from frame
    to frame while the untouched surroundings do not: the log-ratio is > 0 for swaps.
    """
    diff = np.abs(current - previous)
    inner = float(np.mean(diff[REGIONS["inner"]]))
    ring = float(np.mean(diff[REGIONS["ring"]]))
    return float(np.log((inner + 0.05) / (ring + 0.05)))
