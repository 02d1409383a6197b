"""Load the shared, read-only models once per process, honouring local overrides.

Every command line and the app go through here, so a model role is resolved the same way everywhere:
the `--detector/--recognizer/--landmarks/--swapper` flag, else the SWAPSPOT_<ROLE> environment
variable (both loaded *unverified*), else the registry file, whose sha256 is checked before loading.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from models.roles import ResolvedModel, Role, resolve_role
from pipelines import onnx_runtime
from pipelines.errors import ModelError
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.types import AnalysisSettings, ImageRGB, RuntimeSettings


@dataclass(frozen=True)
class ModelOverrides:
    """Local files chosen on the command line (None: use the environment variable or the registry)."""

    detector: Path | None = None
    recognizer: Path | None = None
    landmarks: Path | None = None
    swapper: Path | None = None

    def get(self, role: Role) -> Path | None:
        return getattr(self, role)


def resolve(role: Role, overrides: ModelOverrides | None = None) -> ResolvedModel:
    return resolve_role(role, (overrides or ModelOverrides()).get(role))


def detector_path(override: Path | str | None = None) -> Path:
    """The face detector file (flag, SWAPSPOT_DETECTOR, or the verified registry detector)."""
    return resolve_role("detector", override).path


@functools.lru_cache(maxsize=8)
def _cached_analyzer(
    detector: Path, recognizer: Path | None, landmarks: Path | None, settings: AnalysisSettings
) -> FaceAnalyzer:
    return FaceAnalyzer.from_paths(detector, recognizer, landmarks, settings, RuntimeSettings())


@dataclass(frozen=True)
class LoadedAnalyzer:
    analyzer: FaceAnalyzer
    models: tuple[ResolvedModel, ...]  # what was loaded, with its verified/unverified status


def load_face_analyzer(
    overrides: ModelOverrides | None = None,
    need_recognizer: bool = True,
    want_landmarks: bool = False,
    settings: AnalysisSettings | None = None,
) -> LoadedAnalyzer:
    """The shared analyzer for these model choices (created and warmed up once per process).

    Raises `ModelError` when the detector (or a required recognizer) is unavailable; landmarks are
    optional and silently left out when their model is absent.
    """
    detector = resolve("detector", overrides)
    loaded = [detector]
    recognizer = resolve("recognizer", overrides) if need_recognizer else None
    if recognizer is not None:
        loaded.append(recognizer)
    landmarks: ResolvedModel | None = None
    if want_landmarks:
        try:
            landmarks = resolve("landmarks", overrides)
            loaded.append(landmarks)
        except ModelError:
            landmarks = None
    analyzer = _cached_analyzer(
        detector.path,
        recognizer.path if recognizer else None,
        landmarks.path if landmarks else None,
        settings or AnalysisSettings(),
    )
    return LoadedAnalyzer(analyzer, tuple(loaded))


# -- Swap engines ------------------------------------------------------------------------------------------

Precision = Literal["auto", "fp32", "int8"]


def gpu_available() -> bool:
    """True when onnxruntime can run on an NVIDIA GPU (onnxruntime-gpu installed and a device present)."""
    return "CUDAExecutionProvider" in onnx_runtime.available_providers()


def example_photos() -> list[ImageRGB]:
    """The bundled example faces (used to calibrate the int8 swapper)."""
    folder = Path(__file__).resolve().parent.parent / "examples"
    return [load_image(p) for p in sorted(folder.glob("*.png"))]


def int8_swapper_for(
    swapper: Path, precision: Precision, analyzer: FaceAnalyzer | None = None, build: bool = False
) -> tuple[Path | None, str]:
    """The int8 file to run instead of `swapper` (or None) and a sentence saying why.

    On a GPU, or with precision "fp32", the original runs. Otherwise a cached int8 file that passed its
    quality check is used; with `build`, it is made first (one to two minutes, once).
    """
    from pipelines.quantize import cached_report, ensure_int8_swapper

    if precision == "fp32":
        return None, "fp32 swapper (as requested)"
    if gpu_available():
        return None, "fp32 swapper on the GPU (int8 is a CPU optimisation)"
    report = cached_report(swapper)
    if report is None and build and analyzer is not None:
        report = ensure_int8_swapper(swapper, _read_emap(swapper), example_photos(), analyzer)
    if report is None:
        if precision == "int8":
            raise ModelError("No int8 swapper has been prepared yet: run `python -m pipelines.quantize` once.")
        return None, "fp32 swapper (the int8 version has not been prepared yet)"
    if not report.passed or report.int8_path is None:
        if precision == "int8":
            raise ModelError(report.reason)
        return None, report.reason
    return Path(report.int8_path), report.reason


def fp32_swapper_for(swapper: Path, build: bool = False, photos: Sequence[ImageRGB] = ()) -> tuple[Path | None, str]:
    """The Winograd form of `swapper` to run for fp32 on the CPU (or None) and a sentence saying why.

    A cached form that passed its check is used; with `build`, it is made first (about half a minute and
    2 GB of disk for inswapper_128, once). Never on a GPU, nor with SWAPSPOT_WINOGRAD=0.
    """
    from pipelines.fast_fp32 import cached_winograd_report, enabled, ensure_winograd_swapper

    if not enabled():
        return None, "fp32 swapper (Winograd form switched off by SWAPSPOT_WINOGRAD=0)"
    if gpu_available():
        return None, "fp32 swapper on the GPU"
    report = cached_winograd_report(swapper)
    if report is None and build:
        report = ensure_winograd_swapper(swapper, photos)
    if report is None:
        return None, "fp32 swapper (its faster Winograd form has not been prepared yet)"
    if not report.passed or report.path is None:
        return None, report.reason
    return Path(report.path), report.reason


def _read_emap(swapper: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(swapper))
    return np.asarray(numpy_helper.to_array(model.graph.initializer[-1]), np.float32)
