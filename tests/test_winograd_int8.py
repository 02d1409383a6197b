"""The int8 swapper's Winograd forms: the int8 F(2x2, 3x3) and F(4x4, 3x3) layers, the narrow-layer rewrite,
and the recipe that uses them (checked against fp32, with F(2x2) and then the plain int8 form as fallbacks)."""

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
from pipelines.winograd_int8 import INT8_TRANSFORMS, eligible_layers, input_tiles, int8_winograd_model
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


def test_f4_tiles_and_transforms() -> None:
    """F(4x4): 6 x 6 tiles at a step of 4, and matrices that compute the 3-tap correlation exactly."""
    rng = np.random.default_rng(6)
    b_t, g, a_t = INT8_TRANSFORMS[4]
    d, kernel = rng.standard_normal(6), rng.standard_normal(3)
    np.testing.assert_allclose(a_t @ ((g @ kernel) * (b_t @ d)), [d[i : i + 3] @ kernel for i in range(4)], atol=1e-12)
    x = rng.standard_normal((1, 2, 10, 10)).astype(np.float32)
    tiles = input_tiles(x, (1, 1, 1, 1), m=4)  # padded 12 x 12: 2 x 2 tiles of 6 x 6, step 4
    assert tiles.shape == (36, 4, 2)
    tile = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))[1, 4:10, 0:6]  # tile row 1, column 0, channel 1
    np.testing.assert_allclose(tiles[:, 2, 1], (b_t @ tile @ b_t.T).reshape(36), rtol=1e-4, atol=1e-4)
    lo, hi = winograd_int8.tile_ranges(x, (1, 1, 1, 1), m=4)
    np.testing.assert_allclose(lo, tiles.min(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(hi, tiles.max(axis=(1, 2)), rtol=1e-5)


@pytest.mark.parametrize(
    ("pads", "bias", "block", "most"), [(1, True, 2, 0.03), (0, False, 2, 0.03), (1, True, 4, 0.08)]
)
def test_int8_layer_is_close_to_float(
    pads: int, bias: bool, block: int, most: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 32)
    model = conv_model(pads=pads, bias=bias)
    reference = [run(model, feed) for feed in feeds()]
    rewritten, blocks = int8_winograd_model(model, feeds(), min_width=32, largest=block)
    assert blocks == [block]
    ops = [node.op_type for node in rewritten.graph.node]
    assert "Conv" not in ops and "MatMulIntegerToFloat" in ops
    names = [init.name for init in rewritten.graph.initializer]
    assert len(names) == len(set(names))  # every constant defined once
    errors = [relative_rms(run(rewritten, feed), ref) for feed, ref in zip(feeds(), reference, strict=True)]
    # Plain per-channel int8 of this layer measures 1-2%, F(2x2) about the same, F(4x4) 4-6% (its tiles span a
    # wider range); a wrong zero point, scale or tile gives tens of percent.
    assert max(errors) < most
    assert min(errors) > 1e-4  # it really is int8


@pytest.mark.parametrize("block", [2, 4])
def test_zero_points_are_corrected(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every activation shifted by its zero point, only the correction in the bias keeps the result right."""
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 32)
    model = conv_model(pads=1)
    rewritten, _ = int8_winograd_model(model, feeds(), min_width=32, largest=block)
    bias = next(init for init in rewritten.graph.initializer if init.name.endswith("_wq_bias"))
    broken = numpy_helper.to_array(bias).copy()
    broken[...] = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "b")).reshape(
        1, 1, 1, 1, -1
    )
    bias.CopyFrom(numpy_helper.from_array(broken, bias.name))  # the conv's own bias only
    feed = feeds()[0]
    assert relative_rms(run(rewritten, feed), run(model, feed)) > 0.1


def test_only_wide_even_layers_are_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    def blocks(model: onnx.ModelProto, min_width: int | None, largest: int = 4) -> list[int]:
        return [m for _, m in eligible_layers(model, min_width, largest=largest)]

    assert blocks(conv_model(channels=32), min_width=32) == [2]  # MIN_WIDTH_F4 is 1024
    assert blocks(conv_model(channels=32), min_width=64) == []  # too narrow
    assert blocks(conv_model(channels=32, size=15, pads=1), min_width=32) == []  # odd output size
    assert blocks(conv_model(channels=32), min_width=None) == []  # MIN_WIDTH is 512
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 32)
    assert blocks(conv_model(channels=32), min_width=32) == [4]
    assert blocks(conv_model(channels=32), min_width=32, largest=2) == [2]
    assert blocks(conv_model(channels=32, size=14, pads=1), min_width=32) == [2]  # 14 outputs: 2 x 2 blocks only
    assert blocks(conv_model(channels=32), min_width=32, largest=0) == []


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
    rewritten, blocks = int8_winograd_model(onnx.load(str(path)), min_width=32, calibration=calibration)
    assert blocks == [2]
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
    # The same run measured the range of the convolution's input and output (for the static quantization).
    outputs_y = [run(model, feed) for feed in feeds()]
    inputs_r = [np.maximum(feed["x"], 0) for feed in feeds()]
    assert set(from_file.activations) == {"r", "y"}
    np.testing.assert_allclose(from_file.activations["y"], (min(map(np.min, outputs_y)), max(map(np.max, outputs_y))))
    np.testing.assert_allclose(from_file.activations["r"], (0.0, max(map(np.max, inputs_r))), rtol=1e-6)


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
    """The inswapper's layer layout at 1/16 of its width; its style blocks count as wide here (F(4x4)). At this
    size the transforms cost more than they save, so the speed rule is off (the benchmarks measure the speed)."""
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH", 64)
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 64)
    monkeypatch.setattr(quantize, "MIN_SPEEDUP", 0.0)
    return build_inswapper_topology(tmp_path / "swap.onnx", seed=0, blocks=2, width=64)


def _emap(path: Path) -> np.ndarray:
    return numpy_helper.to_array(onnx.load(str(path)).graph.initializer[-1])


def _form_of(int8: Path) -> str:
    """What an int8 file holds: F(4x4) layers (36 tile positions), F(2x2) ones only (16), or no Winograd layer."""
    positions = {init.dims[0] for init in onnx.load(str(int8)).graph.initializer if init.name.endswith("_wq_U")}
    return "winograd" if 36 in positions else "winograd-f2" if positions else "plain"


def _failing(forms: set[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the quality check fail (12 dB) for int8 files of the given forms; returns the forms checked."""
    real_check = quantize.check_quality
    calls: list[str] = []

    def check(fp32: Path, int8: Path, *args: object) -> tuple[float, float | None, float, float]:
        quality, similarity, fp32_ms, int8_ms = real_check(fp32, int8, *args)  # type: ignore[arg-type]
        calls.append(_form_of(int8))
        return (12.0 if calls[-1] in forms else quality), similarity, fp32_ms, int8_ms

    monkeypatch.setattr(quantize, "check_quality", check)
    return calls


PHOTOS = [ROOT / "examples" / "astronaut.png"]


def test_recipe_makes_a_checked_winograd_int8_swapper(small_topology: Path, analyzer: FaceAnalyzer) -> None:
    photos = [load_image(path) for path in PHOTOS]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "winograd" and report.recipe == RECIPE and report.fallback is None
    assert report.psnr_db is not None and report.psnr_db >= quantize.MIN_PSNR_DB
    assert "Winograd F(4x4) form" in report.reason
    int8 = onnx.load(str(report.int8_path))
    ops = [node.op_type for node in int8.graph.node]
    # Both decoder upsample + conv pairs fused into convolutions of the small map (2 DepthToSpace, no Resize);
    # the 2 x 2 style-block convolutions and the first fused decoder layer as F(4x4).
    assert ops.count("DepthToSpace") == 2 and "Resize" not in ops
    assert ops.count("MatMulIntegerToFloat") == 5
    assert _form_of(Path(str(report.int8_path))) == "winograd"
    # The others in QDQ form: 3 plain layers, the second fused decoder layer, and the 4 small border corrections
    # of each fused pair.
    assert "QLinearConv" not in ops and ops.count("Conv") == 3 + 1 + 2 * 4
    # Channels-last maps between the Winograd layers: every style-block AdaIN is one BatchNormalization.
    assert ops.count("BatchNormalization") == 4 and "InstanceNormalization" not in ops
    # The int8 Winograd weights, set aside while onnxruntime's quantizer ran, are weights again.
    assert [value.name for value in int8.graph.input] == ["target", "source"]
    weights = {init.name for init in int8.graph.initializer}
    assert all(node.input[1] in weights for node in int8.graph.node if node.op_type == "MatMulIntegerToFloat")
    assert cached_report(small_topology) == report
    assert sorted(path.name for path in small_topology.parent.iterdir() if "swap." in path.name) == [
        "swap.int8.json",
        "swap.int8.onnx",
        "swap.onnx",
    ]  # no staged model or its weights left behind
    assert not list(small_topology.parent.glob(".calibration-*"))  # nor the calibration run's copy


def test_recipe_falls_back_to_f2_then_to_plain_int8(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = [load_image(path) for path in PHOTOS]
    calls = _failing({"winograd"}, monkeypatch)
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert calls == ["winograd", "winograd-f2"]
    assert report.form == "winograd-f2" and report.passed and _form_of(Path(str(report.int8_path))) == "winograd-f2"
    assert report.fallback is not None and "its Winograd F(4x4) form failed the quality check (PSNR 12.0 dB" in (
        report.fallback
    )
    assert "(Winograd F(2x2) form: its Winograd F(4x4) form failed" in report.reason
    # Both Winograd forms failing: the plain form, and both reasons.
    (small_topology.parent / "swap.int8.json").unlink()
    calls = _failing({"winograd", "winograd-f2"}, monkeypatch)
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert calls == ["winograd", "winograd-f2", "plain"]
    assert report.form == "plain" and report.passed and _form_of(Path(str(report.int8_path))) == "plain"
    assert report.fallback is not None and report.fallback.count("failed the quality check (PSNR 12.0 dB") == 2
    assert "plain form: its Winograd F(4x4) form failed the quality check" in report.reason


def test_without_f4_layers_the_f2_form_is_not_made_twice(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(winograd_int8, "MIN_WIDTH_F4", 10_000)  # no layer that wide: "winograd" is F(2x2) only
    photos = [load_image(path) for path in PHOTOS]
    calls = _failing({"winograd-f2"}, monkeypatch)
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert calls == ["winograd-f2", "plain"]
    assert report.form == "plain" and report.fallback == (
        "its Winograd F(2x2) form failed the quality check (PSNR 12.0 dB)"
    )


def test_switch_off_gives_the_plain_recipe(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPSPOT_WINOGRAD", "0")
    photos = [load_image(path) for path in PHOTOS]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "plain" and report.recipe == PLAIN_RECIPE and report.fallback is None
    monkeypatch.delenv("SWAPSPOT_WINOGRAD")
    assert cached_report(small_topology) is None  # made for the other recipe: made again when switched on


def test_a_winograd_form_that_cannot_be_made_costs_nothing(
    small_topology: Path, analyzer: FaceAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> tuple[list[int], int]:
        raise RuntimeError("no MatMulIntegerToFloat in this onnxruntime")

    monkeypatch.setattr(quantize, "write_winograd_stage", broken)
    photos = [load_image(path) for path in PHOTOS]
    report = ensure_int8_swapper(small_topology, _emap(small_topology), photos, analyzer)
    assert report.form == "plain" and report.passed
    assert report.fallback == (
        "its Winograd F(4x4) form could not be made: no MatMulIntegerToFloat in this onnxruntime; "
        "its Winograd F(2x2) form could not be made: no MatMulIntegerToFloat in this onnxruntime"
    )
    assert not list(small_topology.parent.glob("*.stage.onnx*")) and not list(small_topology.parent.glob("*.part"))


def test_static_quantization_uses_the_measured_ranges(tmp_path: Path) -> None:
    """The convolutions left to onnxruntime's quantizer get the activation ranges of the float calibration run
    (no second calibration run holding the model again)."""
    if not quantize._takes_ranges():
        pytest.skip("this onnxruntime calibrates by itself (no calibration cache)")
    source = tmp_path / "conv.onnx"
    onnx.save(conv_model(), str(source))
    out = tmp_path / "conv.int8.onnx"
    quantize._quantize_static(source, out, feeds(), {"r": (0.0, 5.1), "y": (-2.0, 3.1)})
    scales = {
        node.input[0]: float(numpy_helper.to_array(init))
        for node in onnx.load(str(out)).graph.node
        if node.op_type == "QuantizeLinear"
        for init in onnx.load(str(out)).graph.initializer
        if init.name == node.input[1]
    }
    measured = max(float(np.maximum(feed["x"], 0).max()) for feed in feeds())
    assert measured < 4.5  # its own calibration would have given another scale
    assert scales["r"] == pytest.approx(5.1 / 255, rel=1e-5)
