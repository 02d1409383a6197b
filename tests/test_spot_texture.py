"""The learned texture signal: crop, ONNX runner, fusion into the logistic model, and the Spotter (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pipelines.face_align import arcface_template
from pipelines.spot import Spotter
from pipelines.spot.explain import SENTENCES
from pipelines.spot.metrics import roc_auc
from pipelines.spot.model import SpotModel, fuse_signal, load_model, train_model
from pipelines.spot.signals import CROP_SIZE, SIGNAL_NAMES, extract_signals
from pipelines.spot.spotter import TEXTURE_SIGNAL
from pipelines.spot.texture_net import INPUT_NAME, TEXTURE_NET_PATH, TextureNet, get_texture_net, to_input
from pipelines.types import Face


def mean_brightness_net(path: Path) -> Path:
    """A tiny stand-in for the texture CNN: logit = 10 * (mean of the input - 0.5), one per crop."""
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    ten = helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0])
    nodes = [
        helper.make_node("ReduceMean", [INPUT_NAME], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["mean", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "ten"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mean_brightness",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 4, CROP_SIZE, CROP_SIZE])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])],
        initializer=[half, ten],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_crop_is_the_nets_input() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)
    kps = (arcface_template(128) * 1.8 + 120).astype(np.float32)
    crop = extract_signals(image, kps).crop
    assert crop is not None and crop.shape == (CROP_SIZE, CROP_SIZE, 4) and crop.dtype == np.uint8
    batch = to_input(np.stack([crop, crop]))
    assert batch.shape == (2, 4, CROP_SIZE, CROP_SIZE) and batch.dtype == np.float32
    assert 0.0 <= batch.min() <= batch.max() <= 1.0
    assert np.allclose(batch[0, 3], crop[:, :, 3] / 255.0)


def test_texture_net_runs_an_onnx_graph(tmp_path: Path) -> None:
    net = TextureNet(mean_brightness_net(tmp_path / "net.onnx"))
    crops = np.stack([np.full((CROP_SIZE, CROP_SIZE, 4), v, np.uint8) for v in (0, 255, 51)])
    assert np.allclose(net.logits(crops), [-5.0, 5.0, -3.0], atol=1e-4)


def test_fused_signal_adds_evidence_and_keeps_contributions_exact() -> None:
    rng = np.random.default_rng(1)
    n = len(SIGNAL_NAMES)
    labels = np.tile([0, 1], 300)
    features = rng.normal(0, 1, (600, n)) + labels[:, None] * 0.3
    scales = rng.uniform(-1, 3, 600)
    extra = rng.normal(0, 1, 600) + labels * 2.0  # a strong extra signal
    base = train_model(features[:400], scales[:400], labels[:400], SIGNAL_NAMES)
    fused = fuse_signal(base, TEXTURE_SIGNAL, features[400:], scales[400:], extra[400:], labels[400:], 0.35)
    assert fused.names == (*SIGNAL_NAMES, TEXTURE_SIGNAL)
    everything = np.c_[features, extra]
    assert roc_auc(labels, fused.predict(everything, scales)) > roc_auc(labels, base.predict(features, scales)) + 0.05
    total = fused.contributions(everything, scales).sum(axis=1) + fused.baseline(scales)
    assert np.allclose(total, fused.logit(everything, scales))
    assert fused.weights[-1] > 0 and fused.size_weights[-1] == 0.0
    again = SpotModel.from_json(fused.to_json())
    assert np.allclose(again.predict(everything, scales), fused.predict(everything, scales))


def test_spotter_uses_the_net_as_one_more_signal(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = len(SIGNAL_NAMES)
    labels = np.repeat([0, 1], 100)
    base = train_model(rng.normal(0, 1, (200, n)), rng.uniform(-1, 3, 200), labels, SIGNAL_NAMES)
    fused = fuse_signal(
        base, TEXTURE_SIGNAL, rng.normal(0, 1, (200, n)), np.zeros(200), rng.normal(0, 1, 200) + labels, labels
    )
    spotter = Spotter(fused, texture_net=TextureNet(mean_brightness_net(tmp_path / "net.onnx")))
    image = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    kps = (arcface_template(128) * 1.5 + 104).astype(np.float32)
    verdict = spotter.score_face(image, Face((100.0, 80.0, 300.0, 320.0), kps, 0.9))
    assert set(verdict.signals) == set(fused.names) == set(verdict.contributions)
    crop = extract_signals(image, kps).crop
    assert crop is not None
    assert verdict.signals[TEXTURE_SIGNAL] == pytest.approx(10.0 * (crop.mean() / 255.0 - 0.5), abs=1e-3)
    assert 0.0 <= verdict.score <= 1.0 and verdict.explanations


def test_committed_weights_have_a_sentence_and_their_net() -> None:
    model = load_model()
    assert model.names[: len(SIGNAL_NAMES)] == SIGNAL_NAMES
    assert all(name in SENTENCES for name in model.names)
    if TEXTURE_SIGNAL in model.names:
        assert TEXTURE_NET_PATH.is_file() and TEXTURE_NET_PATH.stat().st_size < 5_000_000
        logits = TextureNet().logits(np.zeros((2, CROP_SIZE, CROP_SIZE, 4), np.uint8))
        assert logits.shape == (2,) and np.isfinite(logits).all()


def test_missing_net_leaves_the_signal_neutral(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = len(SIGNAL_NAMES)
    labels = np.tile([0, 1], 100)
    base = train_model(rng.normal(0, 1, (200, n)), rng.uniform(-1, 3, 200), labels, SIGNAL_NAMES)
    fused = fuse_signal(base, TEXTURE_SIGNAL, rng.normal(0, 1, (200, n)), np.zeros(200), rng.normal(0, 1, 200), labels)
    missing = tmp_path / "absent.onnx"
    assert get_texture_net(missing) is None
    monkeypatch.setattr("pipelines.spot.spotter.get_texture_net", lambda: get_texture_net(missing))
    with pytest.warns(UserWarning, match="texture net"):
        spotter = Spotter(fused)  # the committed net may be absent in a checkout: degrade, do not crash
    image = rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    kps = (arcface_template(128) * 1.5 + 104).astype(np.float32)
    assert spotter.texture_net is None
    verdict = spotter.score_face(image, Face((100.0, 80.0, 300.0, 320.0), kps, 0.9))
    assert verdict.contributions[TEXTURE_SIGNAL] == pytest.approx(0.0, abs=1e-9)
