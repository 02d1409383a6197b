"""Alignment geometry, tested on its own (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.face_align import (
    ARCFACE_TEMPLATE_112,
    arcface_template,
    estimate_norm,
    estimate_similarity,
    invert_affine,
    norm_crop,
    similarity_scale,
    transform_points,
)


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array(
        [[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]], dtype=np.float64
    )


@pytest.mark.parametrize(
    ("scale", "angle", "tx", "ty"), [(1.0, 0.0, 0.0, 0.0), (2.5, 17.0, -30.0, 12.5), (0.3, -80, 5, 400)]
)
def test_estimate_similarity_recovers_a_known_transform(scale: float, angle: float, tx: float, ty: float) -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, size=(5, 2))
    truth = similarity(scale, angle, tx, ty)
    dst = transform_points(src, truth).astype(np.float64)
    estimated = estimate_similarity(src, dst)
    np.testing.assert_allclose(estimated, truth, atol=1e-3)
    assert similarity_scale(estimated) == pytest.approx(scale, rel=1e-4)


def test_estimate_similarity_matches_scikit_image_least_squares() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(7)
    src = rng.uniform(0, 500, size=(5, 2))
    dst = ARCFACE_TEMPLATE_112 + rng.normal(0, 2.0, size=(5, 2))
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        reference = SimilarityTransform.from_estimate(src, dst).params[:2]
    else:
        tform = SimilarityTransform()
        tform.estimate(src, dst)
        reference = tform.params[:2]
    np.testing.assert_allclose(estimate_similarity(src, dst), reference, atol=1e-6)


def test_templates_follow_the_insightface_convention() -> None:
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    expected_128 = ARCFACE_TEMPLATE_112.copy()
    expected_128[:, 0] += 8.0
    np.testing.assert_allclose(arcface_template(128), expected_128)
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        arcface_template(100)


def test_norm_crop_puts_the_keypoints_on_the_template() -> None:
    truth = similarity(3.1, 12.0, 200.0, 80.0)
    kps = transform_points(arcface_template(128), truth)
    image = np.zeros((600, 700, 3), np.uint8)
    crop, matrix = norm_crop(image, kps, 128)
    assert crop.shape == (128, 128, 3)
    assert crop.dtype == np.uint8
    np.testing.assert_allclose(transform_points(kps, matrix), arcface_template(128), atol=1e-3)
    np.testing.assert_allclose(transform_points(transform_points(kps, matrix), invert_affine(matrix)), kps, atol=1e-3)


def test_norm_crop_samples_the_right_pixels() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    kps = transform_points(arcface_template(112), similarity(2.0, 0.0, 100.0, 50.0))
    # Paint the left-eye neighbourhood; after alignment the colour must sit at the template's left eye.
    x, y = kps[0].round().astype(int)
    image[y - 4 : y + 5, x - 4 : x + 5] = (255, 0, 0)
    crop, _ = norm_crop(image, kps, 112)
    ex, ey = ARCFACE_TEMPLATE_112[0].round().astype(int)
    assert tuple(crop[ey, ex]) == (255, 0, 0)


def test_estimate_norm_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="5 keypoints"):
        estimate_norm(np.zeros((4, 2), np.float32))
