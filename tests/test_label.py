"""Visible "AI-generated face swap" badge: readable at every size, detectable on every frame, operator switch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipelines.provenance.label import (
    DEFAULT_LABEL,
    ENV_VARIABLE,
    MIN_TEXT_HEIGHT,
    add_visible_label,
    label_layout,
    label_present,
    visible_label_enabled,
)
from tests.media_builders import h264_round_trip

SIZES = [(240, 426), (360, 640), (720, 1280), (1080, 1920), (2160, 3840), (1000, 400)]


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Busy content: gradients plus blurred noise, bright and dark areas."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_badge_is_present_legible_and_confined_to_a_corner(height: int, width: int) -> None:
    image = photo_like(height, width)
    labelled = add_visible_label(image)
    assert labelled.shape == image.shape and labelled.dtype == np.uint8
    assert not label_present(image) and label_present(labelled)
    layout = label_layout(height, width)
    assert layout is not None
    x0, y0, x1, y1 = layout.box
    # Legible (text at least MIN_TEXT_HEIGHT px tall) and unobtrusive (a small share of the frame).
    (_, text_h), _ = cv2.getTextSize(DEFAULT_LABEL, cv2.FONT_HERSHEY_SIMPLEX, layout.font_scale, layout.thickness)
    assert text_h >= 0.8 * MIN_TEXT_HEIGHT
    assert (x1 - x0) * (y1 - y0) < 0.05 * height * width
    assert x1 - x0 <= 0.6 * width + 1 and y1 <= height and x0 >= 0
    # Nothing outside the badge changes.
    outside = np.ones((height, width), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(labelled[outside], image[outside])


def test_badge_scales_with_the_image() -> None:
    heights = [label_layout(h, w).box[3] - label_layout(h, w).box[1] for h, w in SIZES[:5]]  # type: ignore[union-attr]
    assert heights == sorted(heights) and heights[-1] > 4 * heights[0]


def test_badge_survives_jpeg_and_is_checked_for_its_own_text() -> None:
    labelled = add_visible_label(photo_like(480, 640, seed=2))
    ok, data = cv2.imencode(".jpg", labelled, [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok and label_present(np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8))
    assert not label_present(labelled, text="Something else entirely")
    custom = add_visible_label(photo_like(480, 640), text="KI-generiert")
    assert label_present(custom, text="KI-generiert")


def test_badge_is_present_on_every_frame_of_an_h264_clip() -> None:
    frames = [add_visible_label(photo_like(240, 426, seed=t)) for t in range(8)]
    decoded = h264_round_trip(frames, crf=28)
    assert len(decoded) == len(frames)
    assert all(label_present(frame) for frame in decoded)


def test_tiny_images_are_returned_unchanged_and_inputs_never_modified() -> None:
    tiny = photo_like(40, 40)
    assert np.array_equal(add_visible_label(tiny), tiny) and not label_present(tiny)
    image = photo_like(360, 640)
    before = image.copy()
    add_visible_label(image)
    assert np.array_equal(image, before)


def test_non_ascii_text_does_not_crash() -> None:
    labelled = add_visible_label(photo_like(360, 640), text="KI-generiert – Gesichtstausch")
    assert label_present(labelled, text="KI-generiert – Gesichtstausch")


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("1", True), ("yes", True), ("0", False), ("false", False), (" OFF ", False)]
)
def test_operator_switch(value: str | None, enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {} if value is None else {ENV_VARIABLE: value}
    assert visible_label_enabled(environ) is enabled
    if value is None:
        monkeypatch.delenv(ENV_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(ENV_VARIABLE, value)
    assert visible_label_enabled() is enabled
