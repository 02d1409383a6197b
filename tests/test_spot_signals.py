"""Signals of the swap detector on synthetic inputs (no model files needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipelines.face_align import arcface_template, estimate_norm
from pipelines.spot.pseudofake import paste_back_mask
from pipelines.spot.signals import GRID, REGIONS, SIGNAL_NAMES, extract_signals, flicker


def textured_scene(size: int = 640, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A detailed random texture with a 'face' whose 5 keypoints sit on the ArcFace template."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(128, 40, (size, size, 3)).astype(np.float32)
    image = cv2.GaussianBlur(noise, (0, 0), 0.7) + rng.normal(0, 6, (size, size, 3)).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    kps = (arcface_template(128) * 3.0 + (size / 2 - 192)).astype(np.float32)  # a ~380 px face
    return image, kps


def test_every_signal_is_finite_and_named() -> None:
    image, kps = textured_scene()
    sig = extract_signals(image, kps)
    assert set(sig.values) == set(SIGNAL_NAMES)
    assert all(np.isfinite(v) for v in sig.values.values())
    assert sig.texture.shape == (GRID, GRID)
    assert sig.face_scale == pytest.approx(np.log2(3.0), abs=0.05)


def test_blurred_inside_lowers_detail_signals() -> None:
    image, kps = textured_scene()
    mask = paste_back_mask(image.shape[:2], estimate_norm(kps, 128))[:, :, None]
    blurred = cv2.resize(cv2.resize(image, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA), image.shape[1::-1])
    pasted = (blurred * mask + image * (1 - mask)).astype(np.uint8)
    real, fake = extract_signals(image, kps).values, extract_signals(pasted, kps).values
    detail = ("detail_vs_surroundings", "detail_vs_edge", "fine_vs_coarse_detail", "boundary_detail_step")
    for name in (*detail, "full_res_detail"):
        assert fake[name] < real[name] - 0.5, name
    # colour was not touched: colour signals barely move
    assert abs(fake["colour_mismatch"] - real["colour_mismatch"]) < 0.3


def test_colour_shift_inside_raises_colour_step() -> None:
    image, kps = textured_scene(seed=1)
    mask = paste_back_mask(image.shape[:2], estimate_norm(kps, 128))[:, :, None]
    tinted = np.clip(image.astype(np.float32) + np.array([40.0, -10.0, -30.0]), 0, 255)
    pasted = (tinted * mask + image * (1 - mask)).astype(np.uint8)
    real, fake = extract_signals(image, kps).values, extract_signals(pasted, kps).values
    assert fake["boundary_colour_step"] > real["boundary_colour_step"] + 0.5


def test_small_and_edge_faces_do_not_crash() -> None:
    image, _ = textured_scene(200)
    kps = (arcface_template(128) * 0.5 + np.array([-10.0, 150.0])).astype(np.float32)  # partly outside
    sig = extract_signals(image, kps)
    assert all(np.isfinite(v) for v in sig.values.values())


def test_flicker_is_higher_when_only_the_inside_changes() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (GRID, GRID)).astype(np.float32)
    inside_changes = base + REGIONS["inner"] * rng.normal(0, 1, (GRID, GRID)).astype(np.float32)
    everywhere = base + rng.normal(0, 1, (GRID, GRID)).astype(np.float32)
    assert flicker(base, inside_changes) > 1.0
    assert abs(flicker(base, everywhere)) < 0.3
    assert flicker(base, base) == pytest.approx(0.0)


def test_full_res_detail_is_zero_for_small_faces() -> None:
    image, kps = textured_scene()
    small = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)  # 1.5 px per unit
    assert extract_signals(small, kps * 0.5).values["full_res_detail"] == 0.0
    assert extract_signals(image, kps).values["full_res_detail"] != 0.0
