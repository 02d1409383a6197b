"""Visible label: a small, readable "AI-generated face swap" badge in a corner of every output frame.

The badge is drawn with OpenCV's built-in Hershey font (no font files), white on a semi-opaque dark
box, sized from the image's shorter side so it reads the same from 240p to 4K. Its layout is a pure
function of the image size and text, so `label_present` can redraw the expected text mask and check
that the pixels under it look like the badge (robust to JPEG and H.264).

Only the person running the app can switch it off, with the environment variable
`SWAPSPOT_VISIBLE_LABEL=0`; nothing on the page can.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.types import ImageRGB

DEFAULT_LABEL = "AI-generated face swap"
ENV_VARIABLE = "SWAPSPOT_VISIBLE_LABEL"
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_HEIGHT_FRACTION = 0.032  # cap height of the text, as a fraction of the image's shorter side
MIN_TEXT_HEIGHT = 10  # pixels: the smallest text that stays legible (240p)
MAX_WIDTH_FRACTION = 0.6  # the badge never takes more than this share of the image width
BOX_OPACITY = 0.62  # how dark the box behind the text is (0 = invisible, 1 = black)
TEXT_OPACITY = 0.95
_OFF_VALUES = frozenset({"0", "false", "no", "off"})


def visible_label_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False only when the operator set SWAPSPOT_VISIBLE_LABEL to 0/false/no/off before starting the app."""
    value = (os.environ if environ is None else environ).get(ENV_VARIABLE, "1")
    return value.strip().lower() not in _OFF_VALUES


@dataclass(frozen=True)
class LabelLayout:
    """Where the badge goes in an image of a given size (all in pixels)."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the dark box (bottom-left corner of the image)
    origin: tuple[int, int]  # text baseline start, relative to the box
    font_scale: float
    thickness: int


def _ascii(text: str) -> str:
    """The Hershey font only has ASCII: anything else is shown as '?'."""
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


def label_layout(height: int, width: int, text: str = DEFAULT_LABEL) -> LabelLayout | None:
    """The badge layout for a height x width image, or None when the image is too small to hold it."""
    text = _ascii(text)
    # 1. Text size from the shorter side, shrunk if the badge would be too wide.
    target = max(MIN_TEXT_HEIGHT, TEXT_HEIGHT_FRACTION * min(height, width))
    (unit_w, unit_h), _ = cv2.getTextSize(text, FONT, 1.0, 2)
    scale = target / unit_h
    pad = max(3, round(0.45 * target))
    if unit_w * scale + 2 * pad > MAX_WIDTH_FRACTION * width:
        scale = (MAX_WIDTH_FRACTION * width - 2 * pad) / unit_w
    thickness = max(1, round(scale * 1.6))
    (text_w, text_h), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    if text_h < 0.8 * MIN_TEXT_HEIGHT:
        return None
    # 2. The box: padding around the text, a margin from the bottom-left corner.
    margin = max(2, round(0.6 * pad))
    box_w, box_h = text_w + 2 * pad, text_h + baseline + 2 * pad
    x0, y1 = margin, height - margin
    x1, y0 = x0 + box_w, y1 - box_h
    if x1 > width or y0 < 0:
        return None
    return LabelLayout((x0, y0, x1, y1), (pad, pad + text_h), scale, thickness)


def _text_mask(layout: LabelLayout, text: str) -> NDArray[np.float32]:
    """Anti-aliased coverage of the text inside the box, 0..1."""
    x0, y0, x1, y1 = layout.box
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.putText(canvas, _ascii(text), layout.origin, FONT, layout.font_scale, 255, layout.thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def add_visible_label(image: ImageRGB, text: str = DEFAULT_LABEL) -> ImageRGB:
    """A copy of `image` with the badge in its bottom-left corner (unchanged copy if it is too small)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    layout = label_layout(out.shape[0], out.shape[1], text)
    if layout is None:
        return out
    x0, y0, x1, y1 = layout.box
    mask = _text_mask(layout, text)[:, :, None] * TEXT_OPACITY
    # 1. Darken the box, 2. paint the text white over it.
    roi = out[y0:y1, x0:x1].astype(np.float32) * (1.0 - BOX_OPACITY)
    roi = roi * (1.0 - mask) + 255.0 * mask
    out[y0:y1, x0:x1] = np.clip(np.rint(roi), 0, 255).astype(np.uint8)
    return out


def label_present(image: ImageRGB, text: str = DEFAULT_LABEL) -> bool:
    """Whether the badge is visibly there: bright text where the expected glyphs are, on a dark box.

    Checks, on the luma under the expected layout: the glyph pixels are much brighter than the box
    (contrast), the box is dark, and brightness follows the glyph mask (correlation), so ordinary
    content, a different text or a missing badge fail while JPEG or H.264 copies still pass.
    """
    image = np.asarray(image)
    layout = label_layout(image.shape[0], image.shape[1], text)
    if layout is None or image.ndim != 3:
        return False
    x0, y0, x1, y1 = layout.box
    luma = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mask = _text_mask(layout, text)
    glyph, ground = mask > 0.6, mask < 0.05
    if glyph.sum() < 10 or ground.sum() < 10:
        return False
    contrast = float(luma[glyph].mean() - luma[ground].mean())
    dark = float(np.percentile(luma[ground], 75))
    correlation = float(np.corrcoef(luma.ravel(), mask.ravel())[0, 1]) if luma.std() > 0 else 0.0
    return contrast > 90.0 and dark < 120.0 and correlation > 0.6
