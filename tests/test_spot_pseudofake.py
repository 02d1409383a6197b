"""Pseudo-fake and classic cheapfake generators: mask geometry, pairing, determinism."""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.face_align import arcface_template, estimate_norm, invert_affine, transform_points
from pipelines.spot.cheapfake import classic_swap, face_mask
from pipelines.spot.pseudofake import (
    hull_mask,
    make_identity_blend,
    make_pseudo_fake,
    paste_back_mask,
    rescale_face,
    square_footprint,
)


def scene(size: int = 480, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 1.0)
    kps = (arcface_template(128) * 2.0 + (size / 2 - 128)).astype(np.float32)
    return image, kps


def test_paste_back_mask_is_an_eroded_blurred_square() -> None:
    image, kps = scene()
    matrix = estimate_norm(kps, 128)
    mask = paste_back_mask(image.shape[:2], matrix)
    assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 1.0

    def at(u: float, v: float) -> float:
        x, y = transform_points(np.array([[u, v]]), invert_affine(matrix))[0]
        return float(mask[int(round(y)), int(round(x))])

    assert at(64, 64) > 0.99  # fully on in the middle
    assert at(64, 1) < 0.05 and at(1, 64) < 0.05  # eroded away at the square's edge
    assert 0.2 < at(64, 5) < 0.9  # the soft seam about size/20 inside the edge
    assert at(64, 25) > 0.95
    assert mask[5, 5] == 0.0  # nothing outside the square


def test_pair_differs_only_inside_the_square_and_is_deterministic() -> None:
    image, kps = scene()
    a = make_pseudo_fake(image, kps, np.random.default_rng(7), jpeg_probability=0.0)
    b = make_pseudo_fake(image, kps, np.random.default_rng(7), jpeg_probability=0.0)
    c = make_pseudo_fake(image, kps, np.random.default_rng(8), jpeg_probability=0.0)
    assert np.array_equal(a.fake, b.fake) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.fake, c.fake)
    assert np.array_equal(a.real, image)  # label 0: the untouched photo
    changed = np.abs(a.fake.astype(int) - image.astype(int)).max(axis=2) > 0
    assert changed.any()
    assert not changed[a.mask == 0].any()  # nothing changes outside the mask
    square = square_footprint(kps)
    x0, y0 = square.min(axis=0)
    x1, y1 = square.max(axis=0)
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x0 - 1 and xs.max() <= x1 + 1 and ys.min() >= y0 - 1 and ys.max() <= y1 + 1


def test_same_jpeg_on_both_members_of_a_pair() -> None:
    image, kps = scene()
    pair = make_pseudo_fake(image, kps, np.random.default_rng(3), jpeg_probability=1.0)
    # JPEG changed the real too, and outside the mask real and fake stay close (same quality, same content)
    assert not np.array_equal(pair.real, image)
    outside = pair.mask == 0
    diff = np.abs(pair.real.astype(int) - pair.fake.astype(int))[outside]
    assert diff.mean() < 3.0


def test_rescale_face_moves_and_mirrors_keypoints() -> None:
    image, kps = scene()
    box = (kps[:, 0].min() - 40, kps[:, 1].min() - 60, kps[:, 0].max() + 40, kps[:, 1].max() + 40)
    _, small_kps = rescale_face(image, kps, box, target_size=100.0)
    size = np.sqrt((box[2] - box[0]) * (box[3] - box[1]))
    eye_gap = np.linalg.norm(small_kps[1] - small_kps[0])
    assert eye_gap == np.float32(eye_gap) and abs(eye_gap / np.linalg.norm(kps[1] - kps[0]) - 100.0 / size) < 0.02
    _, flipped = rescale_face(image, kps, box, target_size=100.0, flip=True)
    assert flipped[0, 0] < flipped[1, 0]  # left eye stays the left keypoint in the mirrored image


def test_classic_swap_changes_only_the_feathered_face() -> None:
    target, t_kps = scene(seed=1)
    source, s_kps = scene(400, seed=2)
    fake = classic_swap(source, s_kps, target, t_kps)
    mask = face_mask(target.shape[:2], t_kps)
    changed = np.abs(fake.astype(int) - target.astype(int)).max(axis=2) > 1
    assert changed[mask > 0.9].mean() > 0.5
    assert not changed[mask < 1e-4].any()


def test_identity_blend_changes_only_the_hull_and_is_deterministic() -> None:
    target, t_kps = scene(seed=1)
    donor, d_kps = scene(400, seed=2)
    a = make_identity_blend(target, t_kps, donor, d_kps, np.random.default_rng(3), jpeg_probability=0.0)
    b = make_identity_blend(target, t_kps, donor, d_kps, np.random.default_rng(3), jpeg_probability=0.0)
    assert np.array_equal(a.fake, b.fake) and np.array_equal(a.real, target)
    changed = np.abs(a.fake.astype(int) - target.astype(int)).max(axis=2) > 1
    assert changed[a.mask > 0.6].mean() > 0.5
    assert not changed[a.mask < 1e-4].any()


def test_hull_mask_differs_from_the_evaluation_ellipse() -> None:
    image, kps = scene()
    matrix = estimate_norm(kps, 128)
    masks = [hull_mask(image.shape[:2], matrix, np.random.default_rng(seed)) for seed in range(4)]
    ellipse = face_mask(image.shape[:2], kps)
    for mask in masks:
        assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 1.0 + 1e-6
        x, y = transform_points(np.array([[64.0, 70.0]]), invert_affine(matrix))[0]
        assert mask[int(y), int(x)] > 0.9  # the face centre is always inside
        assert np.abs(mask - ellipse).mean() > 1e-3
    assert np.abs(masks[0] - masks[1]).max() > 0.1  # random shapes
