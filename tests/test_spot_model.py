"""Learned decision, metrics, the Spotter API, explanations, overlay and the per-viewer history."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputError, ModelError
from pipelines.face_align import arcface_template
from pipelines.spot import FaceVerdict, ImageVerdict, SpotHistory, Spotter, render_overlay, render_timeline
from pipelines.spot.metrics import false_positive_rate, roc_auc
from pipelines.spot.model import SpotModel, fit_logistic, load_model, train_model
from pipelines.spot.signals import SIGNAL_NAMES
from pipelines.types import Face


def synthetic_face(size: int = 400, seed: int = 0) -> tuple[np.ndarray, Face]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    kps = (arcface_template(128) * 1.5 + (size / 2 - 96)).astype(np.float32)
    box = (
        float(kps[:, 0].min() - 30),
        float(kps[:, 1].min() - 50),
        float(kps[:, 0].max() + 30),
        float(kps[:, 1].max() + 30),
    )
    return image, Face(box, kps, 0.9)


def test_roc_auc_and_fpr() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert false_positive_rate(np.array([0, 0, 0, 1]), np.array([0.6, 0.4, 0.5, 0.9])) == pytest.approx(2 / 3)


def test_logistic_fit_separates_and_contributions_add_up() -> None:
    rng = np.random.default_rng(0)
    n = len(SIGNAL_NAMES)
    labels = np.repeat([0, 1], 200)
    features = rng.normal(0, 1, (400, n)) + labels[:, None] * np.linspace(0, 2, n)
    scales = rng.uniform(-1, 3, 400)
    model = train_model(features, scales, labels, SIGNAL_NAMES)
    scores = model.predict(features, scales)
    assert roc_auc(labels, scores) > 0.95
    assert ((scores >= 0) & (scores <= 1)).all()
    total = model.contributions(features, scales).sum(axis=1) + model.baseline(scales)
    assert np.allclose(total, model.logit(features, scales))
    again = SpotModel.from_json(model.to_json())
    assert np.allclose(again.predict(features, scales), scores)
    weights, bias = fit_logistic(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 0.0, 1.0, 1.0]), l2=0.1)
    assert weights[0] > 0 and bias < 0


def test_committed_weights_load_and_match_the_signals() -> None:
    model = load_model()
    assert model.names[: len(SIGNAL_NAMES)] == SIGNAL_NAMES
    assert set(model.names[len(SIGNAL_NAMES) :]) <= {"learned_texture"}
    assert np.all(model.std > 0) and model.platt_a > 0


def test_spotter_verdicts_are_well_formed() -> None:
    image, face = synthetic_face()
    spotter = Spotter()
    verdict = spotter.score_face(image, face)
    assert isinstance(verdict, FaceVerdict)
    assert 0.0 <= verdict.score <= 1.0
    assert set(verdict.signals) == set(spotter.model.names) == set(verdict.contributions)
    assert set(SIGNAL_NAMES) <= set(verdict.signals)
    assert verdict.explanations and all(isinstance(s, str) and s.endswith(".") for s in verdict.explanations)
    assert verdict.heatmap.dtype == np.float32 and 0.0 <= verdict.heatmap.min() <= verdict.heatmap.max() <= 1.0
    x1, y1, x2, y2 = verdict.heatmap_box
    assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
    photo = spotter.score_image(image, [face, face])
    assert isinstance(photo, ImageVerdict) and photo.score == pytest.approx(max(f.score for f in photo.faces))
    assert spotter.score_image(image, []).score == 0.0
    overlay = render_overlay(image, photo)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8 and not np.array_equal(overlay, image)
    with pytest.raises(InputError):
        spotter.score_face(np.zeros((10, 10), np.uint8), face)


def test_spotter_is_thread_safe() -> None:
    spotter = Spotter()
    cases = [synthetic_face(seed=s) for s in range(4)]
    expected = [spotter.score_face(img, face).score for img, face in cases]
    results: dict[int, float] = {}

    def work(i: int) -> None:
        img, face = cases[i % 4]
        results[i] = spotter.score_face(img, face).score

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[i] == expected[i % 4] for i in range(8))


def test_history_smooths_and_keeps_top_frames() -> None:
    image, face = synthetic_face()
    verdict = Spotter().score_face(image, face)
    history = SpotHistory(smoothing=0.5, top_k=2)
    fakes = [FaceVerdict(face.box, s, {}, {}, [], np.zeros((1, 1), np.float32)) for s in (0.1, 0.1, 0.9, 0.1)]
    smoothed = [history.add(i, v, texture=verdict.texture) for i, v in enumerate(fakes)]
    assert smoothed[2] < 0.9 and smoothed[2] > smoothed[1]  # a single spike is damped
    assert history.top_frames()[0] == (2, pytest.approx(0.9))
    assert len(history.timeline) == 4 and history.flicker == pytest.approx(0.0, abs=1e-6)
    other = SpotHistory()
    assert other.timeline == [] and other.score == 0.0  # per-viewer: nothing shared
    plot = render_timeline(history)
    assert plot.shape == (200, 640, 3) and plot.dtype == np.uint8


def test_detector_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines.detect import DETECTOR_ENV, detector_path

    model = tmp_path / "det.onnx"
    model.write_bytes(b"x")
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    monkeypatch.setenv("SWAPSPOT_MODEL_DIR", str(tmp_path / "no-models"))
    with pytest.raises(ModelError, match="models fetch buffalo_l"):
        detector_path(None)  # no flag, no variable, no registry file: says how to get it
    assert detector_path(str(model)) == model.resolve()
    monkeypatch.setenv(DETECTOR_ENV, str(model))
    assert detector_path(None) == model.resolve()
    with pytest.raises(ModelError, match="does not exist"):
        detector_path(str(tmp_path / "missing.onnx"))
