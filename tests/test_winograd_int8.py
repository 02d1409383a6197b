"""The int8 swapper's Winograd form: the int8 F(2x2, 3x3) layers, the narrow-layer rewrite, and the recipe
that uses them (checked against fp32, with the plain int8 form as the fallback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines import quantize, winograd_int8
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.narrow_conv import narrow_conv_model
from pipelines.quantize import PLAIN_RECIPE, RECIPE, cached_report, ensure_int8_swapper
from pipelines.winograd_int8 import eligible_layers, input_tiles, int8_winograd_model
from tests.conftest import ROOT
from tests.model_builders.common import build_computed_padding_conv
from tests.model_builders.detector import build_fake_scrfd, face_at
from tests.model_builders.swapper import build_inswapper_topology


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, feed)[0])


def conv_model(channels: int = 32, pads: int = 1, size: int = 16, bias: bool = True) -> onnx.ModelProto:
    """ReLU'd input (all values >= 0, so the zero points are far from 128), one 3x3 convolution."""
    rng = np.random.default_rng(1)
    weight = (rng.standard_normal((channels, channels, 3, 3)) / np.sqrt(9 * channels)).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w")]
    inputs = ["r", "w"]
    if bias:
        inits.append(numpy_helper.from_array((rng.standard_normal(channels) * 0.5).astype(np.float32), "b"))
        inputs.append("b")
    out = size + 2 * pads - 2
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Conv", inputs, ["y"], pads=[pads] * 4)],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, out, out])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def feeds(channels: int = 32, size: int = 16, count: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    return [{"x": rng.standard_normal((1, channels, size, size)).astype(np.float32)} for _ in range(count)]


def relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2) / np.mean(b**2)))


def test_input_tiles_are_the_winograd_transform_of_every_tile() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 6, 6)).astype(np.float32)
    tiles = input_tiles(x, (1, 1, 1, 1))  # padded 8 x 8: 3 x 3 tiles of 4 x 4, step 2
    assert tiles.shape == (16, 9, 3)
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    b_t = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
    tile = padded[2, 2:6, 4:8]  # tile row 1, column 2, channel 2
    expected = (b_t @ tile @ b_t.T).reshape(16)
    np.testing.assert_allclose(tiles[:, 1 * 3 + 2, 2], expected, rtol=1e-5, atol=1e-5)
    lo, hi = winograd_int8.tile_ranges(x, (1, 1, 1, 1))  # what calibration keeps, one position at a time
    np.testing.assert_allclose(lo, tiles.min(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_allclose(hi, tiles.max(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize(("pads", "bias"), [(1, True), (0, False)])
def test_int8_layer_is_as_close_to_float_as_plain_int8(pads: int, bias: bool) -> None:
    model = conv_model(pads=pads, bias=bias)
    reference = [run(model, feed) for feed in feeds()]
    rewritten, count = int8_winograd_model(model, feeds(), min_width=32)
    assert count == 1
    ops = [node.op_type for node in rewritten.graph.node]
    assert "Conv" not in ops and "MatMulIntegerToFloat" in ops
    errors = [relative_rms(run(rewritten, feed), ref) for feed, ref in zip(feeds(), reference, strict=True)]
    # Plain per-channel int8 of this layer measures 1-2%; a wrong zero point or scale gives tens of percent.
    assert max(errors) < 0.03
    assert min(errors) > 1e-4  # it really is int8


def test_zero_points_are_corrected() -> None:
    """With every activation shifted by its zero point, only the correction in the bias keeps the result right."""
    model = conv_model(pads=1)
    rewritten, _ = int8_winograd_model(model, feeds(), min_width=32)
    bias = next(init for init in rewritten.graph.initializer if init.name.endswith("_wq_bias"))
    broken = numpy_helper.to_array(bias).copy()
    broken[...] = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "b")).reshape(
        1, 1, 1, 1, -1
    )
    bias.CopyFrom(numpy_helper.from_array(broken, bias.name))  # the conv's own bias only
    feed = feeds()[0]
    assert relative_rms(run(rewritten, feed), run(model, feed)) > 0.1


def test_only_wide_even_layers_are_chosen() -> None:
    assert len(eligible_layers(conv_model(channels=32), min_width=32)) == 1
    assert eligible_layers(conv_model(channels=32), min_width=64) == []  # too narrow
    assert eligible_layers(conv_model(channels=32, size=15, pads=1), min_width=32) == []  # odd output size
    assert eligible_layers(conv_model(channels=32), min_width=None) == []  # MIN_WIDTH is 512


def test_layers_behind_a_computed_padding_are_found_by_measuring(tmp_path: Path) -> None:
    """An exporter may compute the pads with ops ONNX shape inference cannot follow (here Abs); the
    calibration run measures the shapes instead, and the layer is rewritten all the same."""
    rng = np.random.default_rng(5)
    weight = rng.standard_normal((32, 32, 3, 3)) / np.sqrt(288)
    path = build_computed_padding_conv(tmp_path / "computed.onnx", weight, relu=True)
    model = onnx.load(str(path))
    assert eligible_layers(model, min_width=32) == []  # inference alone does not know the Conv's input
    calibration = winograd_int8.calibrate_file(path, feeds(), min_width=32)
    assert calibration.shapes == {"padded": [1, 32, 18, 18]} and set(calibration.ranges) == {"y"}
    rewritten, count = int8_winograd_model(onnx.load(str(path)), min_width=32, calibration=calibration)
    assert count == 1
    feed = feeds()[0]
    assert relative_rms(run(rewritten, feed), run(model, feed)) < 0.03


def test_calibration_leaves_the_model_outputs_as_they_were(tmp_path: Path) -> None:
    model = conv_model()
    outputs = [output.name for output in model.graph.output]
    ranges = winograd_int8.calibrate(model, eligible_layers(model, min_width=32), feeds())
    assert [output.name for output in model.graph.output] == outputs
    ((lo, hi),) = ranges.values()
    assert lo.shape == hi.shape == (16,) and np.all(lo <= hi)
    # From the file, the same ranges (every feed counted once) and the measured shape.
    onnx.save(model, str(tmp_path / "conv.onnx"))
    from_file = winograd_int8.calibrate_file(tmp_path / "conv.onnx", feeds(), min_width=32)
    np.testing.assert_allclose(from_file.ranges["y"][0], lo, rtol=1e-6)
    np.testing.assert_allclose(from_file.ranges["y"][1], hi, rtol=1e-6)
    assert from_file.shapes == {"r": [1, 32, 16, 16]}


def narrow_model(outputs: int, kernel: int = 7, stride: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    weight = (rng.standard_normal((outputs, 16, kernel, kernel)) * 0.05).astype(np.float32)
    bias = rng.standard_normal(outputs).astype(np.float32)
    size = 20
    out = (size + 2 * 2 - kernel) // stride + 1
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[2, 2, 2, 2], strides=[stride, stride])],
        "narrow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs, out, out])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_narrow_convolution_is_the_same_sum() -> None:
    model = narrow_model(3)
    x = {"x": np.random.default_rng(4).standard_normal((1, 16, 20, 20)).astype(np.float32)}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    rewritten, count = narrow_conv_model(copy)
    assert count == 1 and "Conv" not in [node.op_type for node in rewritten.graph.node]
    np.testing.assert_allclose(run(rewritten, x), run(model, x), atol=1e-4)
    assert narrow_conv_model(narrow_model(16))[1] == 0  # wide enough for a plain GEMM
    assert narrow_conv_model(narrow_model(3, stride=2))[1] == 0


@pytest.fixture
def analyzer(tmp_path: Path) -> FaceAnalyzer:
    return FaceAnalyzer.from_paths(build_fake_scrfd(tmp_path / "det.onnx", [face_at(320, 300, 220)]))


@pytest.fixture
def small_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The inswapper's layer layout at 1/16 of its width; its style blocks count as wide here. At this size
    the transforms cost more than they save, so the speed rule is off (the benchmarks measure the speed)."""
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH", 64)
    monkeypatch.setattr(quantize, "MIN_SPEEDUP", 0.0)
    return build_inswapper_topology(tmp_path / "swap.onnx", seed=0, blocks=2, width=64)


def _emap(path: Path) -> np.ndarray:
    return numpy_helper.to_array(onnx.load(str(path)).graph.initializer[-1])


def test_recipe_makes_a_checked_winograd_int8_swapper(small_topology: Path, analyzer: FaceAnalyzer) -> None:
    photos = [load_image(ROOT / "examples" / "astronaut.png")]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "winograd" and report.recipe == RECIPE and report.fallback is None
    assert report.psnr_db is not None and report.psnr_db >= quantize.MIN_PSNR_DB
    int8 = onnx.load(str(report.int8_path))
    ops = [node.op_type for node in int8.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 4  # the 2 x 2 style-block convolutions
    assert "QLinearConv" not in ops and ops.count("Conv") == 5  # the others, in QDQ form
    assert cached_report(small_topology) == report


def test_recipe_falls_back_to_plain_int8(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_check = quantize.check_quality
    calls: list[str] = []

    def check(fp32: Path, int8: Path, *args: object) -> tuple[float, float | None, float, float]:
        quality, similarity, fp32_ms, int8_ms = real_check(fp32, int8, *args)  # type: ignore[arg-type]
        calls.append("winograd" if "MatMulIntegerToFloat" in str(onnx.load(str(int8)).graph.node) else "plain")
        return (12.0 if calls[-1] == "winograd" else quality), similarity, fp32_ms, int8_ms

    monkeypatch.setattr(quantize, "check_quality", check)
    photos = [load_image(ROOT / "examples" / "astronaut.png")]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert calls == ["winograd", "plain"]
    assert report.form == "plain" and report.fallback is not None and "12.0 dB" in report.fallback
    assert report.passed and "plain form: its Winograd form failed the quality check" in report.reason
    assert "MatMulIntegerToFloat" not in {node.op_type for node in onnx.load(str(report.int8_path)).graph.node}


def test_switch_off_gives_the_plain_recipe(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPSPOT_WINOGRAD", "0")
    photos = [load_image(ROOT / "examples" / "astronaut.png")]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "plain" and report.recipe == PLAIN_RECIPE and report.fallback is None
    monkeypatch.delenv("SWAPSPOT_WINOGRAD")
    assert cached_report(small_topology) is None  # made for the other recipe: made again when switched on


def test_a_winograd_form_that_cannot_be_made_costs_nothing(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> int:
        raise RuntimeError("no MatMulIntegerToFloat in this onnxruntime")

    monkeypatch.setattr(quantize, "write_winograd_stage", broken)
    photos = [load_image(ROOT / "examples" / "astronaut.png")]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "plain" and report.passed
    assert report.fallback == "its Winograd form could not be made: no MatMulIntegerToFloat in this onnxruntime"
    assert not list(small_topology.parent.glob("*.stage.onnx")) and not list(small_topology.parent.glob("*.part"))
