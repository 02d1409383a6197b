"""Shared fixtures. `../shared` (real detectors, face photos) is optional: tests that need it skip."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
SHARED_REASON = f"needs ../shared (real SCRFD models and face photos), not found at {SHARED}"


def _shared_ready() -> bool:
    return (SHARED / "models" / "scrfd_2.5g_kps.onnx").is_file() and (SHARED / "data" / "faces").is_dir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _shared_ready():
        return
    skip = pytest.mark.skip(reason=SHARED_REASON)
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not _shared_ready():
        pytest.skip(SHARED_REASON)
    return SHARED


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.ascontiguousarray(image[:, :, ::-1])


@pytest.fixture(scope="session")
def real_detector_path(shared_dir: Path) -> Path:
    return shared_dir / "models" / "scrfd_2.5g_kps.onnx"


@pytest.fixture(scope="session")
def fake_arcface_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.model_builders.recognizer import build_fake_arcface

    return build_fake_arcface(tmp_path_factory.mktemp("models") / "fake_arcface.onnx")
