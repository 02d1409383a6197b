"""The int8 swapper: made once, cached beside the original, used only when it is good and faster."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper

from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.loading import int8_swapper_for
from pipelines.quantize import cached_report, ensure_int8_swapper, int8_paths
from tests.conftest import ROOT
from tests.model_builders.detector import build_fake_scrfd, face_at
from tests.model_builders.swapper import build_tiny_inswapper


@pytest.fixture
def analyzer(tmp_path: Path) -> FaceAnalyzer:
    return FaceAnalyzer.from_paths(build_fake_scrfd(tmp_path / "det.onnx", [face_at(320, 300, 220)]))


def photos() -> list:
    return [load_image(ROOT / "examples" / "astronaut.png")]


def test_quantized_swapper_is_checked_cached_and_invalidated(tmp_path: Path, analyzer: FaceAnalyzer) -> None:
    fp32 = build_tiny_inswapper(tmp_path / "swap.onnx")
    emap = numpy_helper.to_array(onnx.load(str(fp32)).graph.initializer[-1])
    report = ensure_int8_swapper(fp32, emap, photos(), analyzer)
    int8, report_path = int8_paths(fp32)
    assert int8.is_file() and report_path.is_file()
    assert report.psnr_db is not None and report.psnr_db >= 30.0
    assert report.fp32_ms and report.int8_ms
    # The decision follows the stated rule: good enough AND at least 1.2x faster.
    assert report.passed == (report.int8_ms * 1.2 <= report.fp32_ms)
    assert cached_report(fp32) == report  # second use: no work
    stat = fp32.stat()
    os.utime(fp32, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_report(fp32) is None  # a changed original invalidates the cache


def test_precision_choice(tmp_path: Path, analyzer: FaceAnalyzer) -> None:
    fp32 = build_tiny_inswapper(tmp_path / "swap.onnx")
    path, reason = int8_swapper_for(fp32, "fp32")
    assert path is None and "as requested" in reason
    path, reason = int8_swapper_for(fp32, "auto")
    assert path is None and "not been prepared" in reason
    path, reason = int8_swapper_for(fp32, "auto", analyzer, build=True)
    report = cached_report(fp32)
    assert report is not None and reason == report.reason
    assert (path is not None) == report.passed
