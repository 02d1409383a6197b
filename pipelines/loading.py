"""Load the shared, read-only models once per process, honouring local overrides.

Every command line and the app go through here, so a model role is resolved the same way everywhere:
the `--detector/--recognizer/--landmarks/--swapper` flag, else the SWAPSPOT_<ROLE> environment
variable (both loaded *unverified*), else the registry file, whose sha256 is checked before loading.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from models.roles import ResolvedModel, Role, resolve_role
from pipelines.errors import ModelError
from pipelines.face_analysis import FaceAnalyzer
from pipelines.types import AnalysisSettings, RuntimeSettings


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
