"""The fp32 swapper's Winograd form: the graph rewrite, its cached and checked file, and who runs it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pipelines import fast_fp32
from pipelines.engine_inswapper import InswapperEngine
from pipelines.loading import fp32_swapper_for
from pipelines.service import SwapperPreparation
from pipelines.types import RuntimeSettings
from pipelines.winograd import find_layers, winograd_model
from tests.model_builders.common import build_computed_padding_conv
from tests.model_builders.swapper import build_tiny_inswapper


def conv_graph() -> onnx.ModelProto:
    """3x3 convolutions of every kind the rewrite meets, and some it must leave alone.

    - c1: padded, with bias, 16x16 out (F(4x4)); c2 and c3 share one kernel (F(4x4));
    - c4: unpadded, no bias, 14x14 out (F(2x2): 14 is not a multiple of 4);
    - c5 stride 2, c6 1x1, c7 grouped: left as they are; "emap" must stay the last initializer.
    """
    rng = np.random.default_rng(0)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    inits = [
        numpy_helper.from_array(weight(8, 3, 3, 3), "w1"),
        numpy_helper.from_array(weight(8), "b1"),
        numpy_helper.from_array(weight(8, 8, 3, 3), "w_shared"),
        numpy_helper.from_array(weight(4, 8, 3, 3), "w4"),
        numpy_helper.from_array(weight(4, 4, 3, 3), "w5"),
        numpy_helper.from_array(weight(4, 4, 1, 1), "w6"),
        numpy_helper.from_array(weight(4, 2, 3, 3), "w7"),
        numpy_helper.from_array(weight(16, 16), "emap"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["y1", "w_shared"], ["y2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w_shared"], ["y3"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["y3", "w4"], ["y4"]),
        helper.make_node("Conv", ["y4", "w5"], ["y5"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["y5", "w6"], ["y6"]),
        helper.make_node("Conv", ["y6", "w7"], ["out"], group=2, pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 7, 7])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def test_rewrite_computes_the_same_convolutions_and_leaves_the_others() -> None:
    model = conv_graph()
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    expected = run(model, x)
    assert len(find_layers(model)) == 4  # c1 to c4
    rewritten, count = winograd_model(model)
    assert count == 4
    onnx.checker.check_model(rewritten)
    left = [n for n in rewritten.graph.node if n.op_type == "Conv"]
    assert sorted(n.output[0] for n in left) == ["out", "y5", "y6"]
    assert rewritten.graph.initializer[-1].name == "emap"
    names = {init.name for init in rewritten.graph.initializer}
    assert not names & {"w1", "w_shared", "w4"} and {"w5", "w6", "w7"} <= names
    np.testing.assert_allclose(run(rewritten, x), expected, atol=1e-4)
    assert len(model.graph.node) == 8  # the original is untouched


def test_rewrite_in_place_and_size_budget() -> None:
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    expected = run(conv_graph(), x)
    model = conv_graph()
    same, count = winograd_model(model, in_place=True)
    assert same is model and count == 4
    np.testing.assert_allclose(run(model, x), expected, atol=1e-4)
    # A budget of 3,000 bytes: F(2x2) for w1 (1,536 bytes; F(4x4) would take 3,456) and w4 (2,048); the
    # shared 8x8-channel kernel fits neither (4,096 and 9,216), so both its convolutions stay.
    small, count = winograd_model(conv_graph(), max_bytes=3000)
    assert count == 2
    assert sorted(n.output[0] for n in small.graph.node if n.op_type == "Conv") == ["out", "y2", "y3", "y5", "y6"]
    assert "w_shared" in {init.name for init in small.graph.initializer}
    np.testing.assert_allclose(run(small, x), expected, atol=1e-4)
    untouched, count = winograd_model(conv_graph(), max_bytes=0)
    assert count == 0 and [n.op_type for n in untouched.graph.node].count("Conv") == 7


@pytest.fixture()
def swapper(tmp_path: Path) -> Path:
    return build_tiny_inswapper(tmp_path / "inswapper_128.onnx", busy_convs=2)


@pytest.fixture()
def always_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a tiny model the speed comparison is noise; the tests that need a pass do not depend on it."""
    monkeypatch.setattr(fast_fp32, "MIN_SPEEDUP", 0.0)


def test_prepared_once_checked_and_run_by_the_engine(swapper: Path, always_faster: None, monkeypatch) -> None:
    path, reason = fp32_swapper_for(swapper)
    assert path is None and "not been prepared" in reason
    path, reason = fp32_swapper_for(swapper, build=True)
    model, data, report_path = fast_fp32.winograd_paths(swapper)
    assert path == model and model.is_file() and data.is_file() and "Winograd form" in reason
    report = json.loads(report_path.read_text())
    assert report["passed"] and report["layers"] == 3 and report["max_abs_diff"] <= fast_fp32.MAX_ABS_DIFF
    assert not list(swapper.parent.glob("*.tmp"))  # no staging left behind
    # Cached: a second call does not rebuild.
    monkeypatch.setattr(fast_fp32, "write_winograd", lambda *a: pytest.fail("rebuilt"))
    assert fp32_swapper_for(swapper, build=True)[0] == model
    # The engine runs it, reading emap from the original.
    crop = np.random.default_rng(3).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    latent = np.random.default_rng(4).standard_normal((1, 512)).astype(np.float32)
    latent /= np.linalg.norm(latent)
    plain = InswapperEngine.from_path(swapper, RuntimeSettings(intra_op_threads=1))
    fast = InswapperEngine.from_path(swapper, RuntimeSettings(intra_op_threads=1), run_path=model)
    assert np.array_equal(fast.emap, plain.emap)
    assert np.abs(fast.forward(crop, latent).astype(int) - plain.forward(crop, latent)).max() <= 1
    # A changed original invalidates it.
    os.utime(swapper, ns=(report["source_mtime_ns"] + 10**9, report["source_mtime_ns"] + 10**9))
    assert fast_fp32.cached_winograd_report(swapper) is None
    # So does a missing weights file.
    os.utime(swapper, ns=(report["source_mtime_ns"], report["source_mtime_ns"]))
    assert fast_fp32.cached_winograd_report(swapper) is not None
    data.unlink()
    assert fast_fp32.cached_winograd_report(swapper) is None


def test_refused_when_it_differs_or_is_not_faster(swapper: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_fp32, "MAX_ABS_DIFF", -1.0)
    path, reason = fp32_swapper_for(swapper, build=True)
    assert path is None and "differs from it" in reason
    assert fast_fp32.cached_winograd_report(swapper) is not None  # remembered: not rebuilt at every start
    fast_fp32.winograd_paths(swapper)[2].unlink()
    monkeypatch.setattr(fast_fp32, "MAX_ABS_DIFF", 1e-3)
    monkeypatch.setattr(fast_fp32, "MIN_SPEEDUP", 1e9)
    path, reason = fp32_swapper_for(swapper, build=True)
    assert path is None and "not faster" in reason


def test_no_room_no_gpu_or_switched_off(swapper: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_fp32.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    path, reason = fp32_swapper_for(swapper, build=True)
    assert path is None and "free disk space" in reason
    assert not fast_fp32.winograd_paths(swapper)[0].exists()
    assert fast_fp32.cached_winograd_report(swapper) is None  # tried again next time
    monkeypatch.setenv(fast_fp32.WINOGRAD_ENV, "0")
    assert "switched off" in fp32_swapper_for(swapper, build=True)[1]
    monkeypatch.delenv(fast_fp32.WINOGRAD_ENV)
    monkeypatch.setattr("pipelines.loading.gpu_available", lambda: True)
    assert fp32_swapper_for(swapper, build=True) == (None, "fp32 swapper on the GPU")


def test_app_prepares_it_in_the_background_when_fp32_is_asked_for(swapper: Path, always_faster: None) -> None:
    prep = SwapperPreparation()
    prep.start(swapper, analyzer=None, precision="fp32")  # type: ignore[arg-type]  # fp32 needs no analyzer
    assert prep.thread is not None
    assert "preparing its faster Winograd form" in prep.current()[1]
    prep.thread.join(timeout=60)
    path, status = prep.current()
    assert path == fast_fp32.winograd_paths(swapper)[0] and "Winograd form" in status
    # A second start (the next launch) uses it at once.
    again = SwapperPreparation()
    again.start(swapper, analyzer=None, precision="fp32")  # type: ignore[arg-type]
    assert again.thread is None and again.current()[0] == path


def test_a_new_file_to_run_lets_the_old_sessions_go(swapper: Path) -> None:
    """When the faster file is ready, the engines (onnxruntime sessions) made for the old one are dropped
    from the shared cache, so their memory goes once no viewer runs them any more."""
    from pipelines import service

    service._engine.cache_clear()
    old = service._engine("inswapper", swapper, None, 0)
    assert service._engine("inswapper", swapper, None, 0) is old  # shared while the file stays the same
    prep = SwapperPreparation()
    prep._set(None, "fp32 swapper")  # the same file: nothing dropped
    assert service._engine.cache_info().currsize == 1
    prep._set(swapper, "a faster file")
    assert service._engine.cache_info().currsize == 0
    service._engine.cache_clear()


def test_when_int8_is_not_used_the_status_keeps_saying_why(swapper: Path, always_faster: None) -> None:
    from dataclasses import asdict

    from pipelines.quantize import QuantizationReport, int8_paths

    stat = swapper.stat()
    failed = "int8 swapper failed the quality check (PSNR 12.0 dB): using fp32"
    report = QuantizationReport(
        str(swapper), None, False, failed, source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns
    )
    int8_paths(swapper)[1].write_text(json.dumps(asdict(report)))
    prep = SwapperPreparation()
    prep.start(swapper, analyzer=None, precision="auto")  # type: ignore[arg-type]  # int8 is not rebuilt
    assert prep.thread is not None
    prep.thread.join(timeout=60)
    path, status = prep.current()
    assert path == fast_fp32.winograd_paths(swapper)[0]
    assert status.startswith(failed + "; ") and "Winograd form" in status


def test_a_damaged_swapper_gets_a_message_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "inswapper_128.onnx"
    damaged.write_bytes(b"not an onnx model at all")
    assert fast_fp32.main(["--swapper", str(damaged)]) == 2
    assert "could not be rewritten in Winograd form" in capsys.readouterr().err


def test_layers_behind_a_computed_padding_are_found_by_measuring(tmp_path: Path) -> None:
    """Some exporters compute the pads with ops ONNX shape inference cannot follow (here Abs): one run on a
    sample input measures the shapes instead, and the layer is rewritten all the same."""
    rng = np.random.default_rng(6)
    weight = rng.standard_normal((8, 8, 3, 3)) * 0.2
    source = build_computed_padding_conv(tmp_path / "computed.onnx", weight)
    sample = [rng.standard_normal((1, 8, 16, 16)).astype(np.float32)]
    assert fast_fp32.write_winograd(source, tmp_path / "inferred.onnx") == 0  # inference alone misses it
    assert fast_fp32.write_winograd(source, tmp_path / "measured.onnx", sample) == 1
    options = ort.SessionOptions()
    options.log_severity_level = 3
    run = [
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": sample[0]})[0]
        for path in (source, tmp_path / "measured.onnx")
    ]
    np.testing.assert_allclose(run[1], run[0], atol=1e-4)


def test_a_calibration_copy_left_behind_is_removed_by_the_next_calibration(tmp_path: Path) -> None:
    import time

    from pipelines.winograd import CALIBRATION_PREFIX, STALE_AFTER_S, _remove_stale_copies

    old, fresh = tmp_path / f"{CALIBRATION_PREFIX}old", tmp_path / f"{CALIBRATION_PREFIX}fresh"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "model.onnx.data").write_bytes(b"x")
    stale = time.time() - STALE_AFTER_S - 60
    os.utime(old, (stale, stale))
    _remove_stale_copies(tmp_path)
    assert not old.exists() and fresh.exists()  # one that may belong to a running calibration stays
