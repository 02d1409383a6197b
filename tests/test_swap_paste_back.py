"""ROI-only paste-back: same geometry as InsightFace's full-frame `INSwapper.get(paste_back=True)`."""

from __future__ import annotations

import contextlib
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from insightface.model_zoo.inswapper import INSwapper

from pipelines.engine_inswapper import InswapperEngine
from pipelines.face_align import estimate_norm, invert_affine
from pipelines.face_analysis import FaceAnalyzer
from pipelines.paste_back import MASK_CACHE_SIZE, feather_recipe, feathered_square, mouth_polygon, paste_back
from pipelines.swap_engines import PreparedSource, SourceIdentity
from pipelines.types import Face, SwapSettings
from tests.conftest import read_rgb
from tests.model_builders.swapper import build_tiny_inswapper
from tests.test_swap_support import face_from_pose, textured

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # insightface's skimage call

# Geometry agreement with InsightFace, measured over the pixels either method changed (the face region).
# The remaining differences come from the mask: InsightFace erodes a square snapped to the frame's pixel
# grid, ours is the same square eroded analytically in its own frame (sub-pixel). Measured (tiny swapper
# changing the whole crop; these 5 poses at 720p, and the two faces of ../shared pair.jpg): mean 0.0-1.53
# grey levels, max 13.
MAX_MEAN_ABS = 2.0
MAX_ABS = 24

POSES = [  # (centre x, centre y, scale of the 128 px square, turn in radians)
    (640, 360, 1.5, 0.0),
    (300, 200, 0.9, 0.2),
    (900, 450, 2.5, -0.35),
    (60, 300, 1.6, 0.1),  # cut by the left edge of the frame
    (1240, 670, 1.2, 0.05),  # cut by the bottom-right corner
]


@pytest.fixture(scope="module")
def tiny_swapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The whole crop changes (face_only=False), so the entire feathered square is compared.
    return build_tiny_inswapper(tmp_path_factory.mktemp("swapper") / "tiny_inswapper.onnx", face_only=False)


@pytest.fixture(scope="module")
def engine(tiny_swapper: Path) -> InswapperEngine:
    return InswapperEngine.from_path(tiny_swapper)


@pytest.fixture(scope="module")
def theirs(tiny_swapper: Path) -> INSwapper:
    with contextlib.redirect_stdout(io.StringIO()):
        return INSwapper(model_file=str(tiny_swapper))


class _SourceFace:
    """What InsightFace's `get` reads from a source face."""

    def __init__(self, embedding: np.ndarray) -> None:
        self.normed_embedding = embedding


def _source(engine: InswapperEngine, seed: int = 3) -> tuple[PreparedSource, np.ndarray]:
    rng = np.random.default_rng(seed)
    embedding = rng.standard_normal(512).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    identity = SourceIdentity(embedding, np.zeros((256, 256, 3), np.uint8), 1)
    return engine.prepare_source(identity), embedding


@pytest.mark.parametrize("pose", POSES)
def test_paste_back_matches_insightface_geometry(engine: InswapperEngine, theirs: INSwapper, pose: tuple) -> None:
    frame = textured(720, 1280, seed=1, cell=16)
    face = face_from_pose(*pose)
    prepared, embedding = _source(engine)
    ours = frame.copy()
    patch = engine.swap(frame, face, prepared, SwapSettings())
    assert patch is not None
    patch.apply(ours)
    reference = theirs.get(np.ascontiguousarray(frame[:, :, ::-1]), face, _SourceFace(embedding), paste_back=True)
    reference = reference[:, :, ::-1]
    changed = (ours != frame).any(axis=2) | (reference != frame).any(axis=2)
    assert changed.sum() > 5000, "the swap must visibly change the face"
    diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16)).max(axis=2)
    assert diff[changed].mean() <= MAX_MEAN_ABS
    assert diff.max() <= MAX_ABS
    # Everything InsightFace changed lies inside our patch (we never need the full frame).
    x0, y0, x1, y1 = patch.box
    outside = (reference != frame).any(axis=2)
    outside[y0:y1, x0:x1] = False
    assert not outside.any()


def test_patch_is_small_beside_the_frame(engine: InswapperEngine) -> None:
    frame = textured(1080, 1920, seed=2)
    patch = engine.swap(frame, face_from_pose(960, 540, 1.5, 0.1), _source(engine)[0], SwapSettings())
    assert patch is not None
    x0, y0, x1, y1 = patch.box
    assert (x1 - x0) * (y1 - y0) < 0.03 * frame.shape[0] * frame.shape[1]


def test_face_outside_the_frame_gives_no_patch(engine: InswapperEngine) -> None:
    frame = textured(200, 200, seed=2)
    assert engine.swap(frame, face_from_pose(900, 900, 1.0, 0.0), _source(engine)[0], SwapSettings()) is None


def test_mask_cache_is_bounded_read_only_and_thread_safe() -> None:
    assert feathered_square.cache_info().maxsize == MASK_CACHE_SIZE
    face = face_from_pose(300, 300, 1.3, 0.15)
    to_frame = invert_affine(estimate_norm(face.kps, 128))
    recipe = feather_recipe(to_frame, 128, (600, 600, 3))
    results: list[np.ndarray] = []

    def build() -> None:
        results.append(feathered_square(recipe)[0])

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(r, results[0]) for r in results)
    assert not results[0].flags.writeable
    # Many different sizes never grow the cache past its bound.
    for side in range(60, 60 + 2 * MASK_CACHE_SIZE):
        to_frame_s = invert_affine(estimate_norm(face_from_pose(300, 300, side / 128, 0.0).kps, 128))
        feathered_square(feather_recipe(to_frame_s, 128, (600, 600, 3)))
    assert feathered_square.cache_info().currsize <= MASK_CACHE_SIZE


def test_colour_correction_moves_the_face_towards_the_target_colours(engine: InswapperEngine) -> None:
    frame = textured(400, 400, seed=4)
    face = face_from_pose(200, 200, 1.2, 0.0)
    crop = np.full((128, 128, 3), (250, 20, 20), np.uint8)  # a red face on a grey-ish frame
    to_crop = estimate_norm(face.kps, 128)
    plain = paste_back(frame, crop, to_crop)
    corrected = paste_back(frame, crop, to_crop, colour_correction=True)
    assert plain is not None and corrected is not None
    x0, y0, x1, y1 = plain.box
    target_mean = frame[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    centre = (slice(60, 100), slice(60, 100))
    gap_plain = np.abs(plain.pixels[centre].reshape(-1, 3).mean(axis=0) - target_mean).sum()
    gap_corrected = np.abs(corrected.pixels[centre].reshape(-1, 3).mean(axis=0) - target_mean).sum()
    assert gap_corrected < 0.5 * gap_plain


def test_mouth_mask_keeps_the_target_mouth() -> None:
    frame = textured(400, 400, seed=5)
    face = face_from_pose(200, 200, 1.2, 0.0)
    crop = np.full((128, 128, 3), 255, np.uint8)
    patch = paste_back(frame, crop, estimate_norm(face.kps, 128), keep_mouth_of=face)
    assert patch is not None
    mouth = ((face.kps[3] + face.kps[4]) / 2).round().astype(int)
    x0, y0 = patch.x0, patch.y0
    assert np.array_equal(patch.pixels[mouth[1] - y0, mouth[0] - x0], frame[mouth[1], mouth[0]])
    eye = face.kps[0].round().astype(int)
    assert not np.array_equal(patch.pixels[eye[1] - y0, eye[0] - x0], frame[eye[1], eye[0]])


def test_mouth_polygon_prefers_plausible_106_landmarks() -> None:
    face = face_from_pose(200, 200, 1.2, 0.0)
    lips = np.zeros((106, 2), np.float32)
    centre = (face.kps[3] + face.kps[4]) / 2
    lips[52:72] = centre + np.random.default_rng(0).uniform(-8, 8, (20, 2))
    with_lips = Face(face.box, face.kps, face.score, landmarks_106=lips)
    polygon = mouth_polygon(with_lips)
    assert np.abs(polygon - centre).max() <= 8.01
    # Implausible landmarks (far from the mouth corners) fall back to the 5 keypoints.
    far = Face(face.box, face.kps, face.score, landmarks_106=np.zeros((106, 2), np.float32))
    assert np.abs(mouth_polygon(far).mean(axis=0) - centre).max() < 2.0


@pytest.mark.shared
def test_paste_back_matches_insightface_on_real_faces(
    engine: InswapperEngine, theirs: INSwapper, real_detector_path: Path, shared_dir: Path
) -> None:
    """Both faces of pair.jpg (real SCRFD keypoints): mean over the face box <= MAX_MEAN_ABS, max <= MAX_ABS."""
    frame = read_rgb(shared_dir / "data" / "scenes" / "pair.jpg")
    faces = FaceAnalyzer.from_paths(real_detector_path, warm_up=False).detect(frame)
    assert len(faces) == 2
    prepared, embedding = _source(engine)
    for face in faces:
        ours = frame.copy()
        patch = engine.swap(frame, face, prepared, SwapSettings())
        assert patch is not None
        patch.apply(ours)
        reference = theirs.get(np.ascontiguousarray(frame[:, :, ::-1]), face, _SourceFace(embedding))[:, :, ::-1]
        diff = np.abs(ours.astype(np.int16) - reference.astype(np.int16)).max(axis=2)
        x1, y1, x2, y2 = (int(v) for v in face.box)
        assert diff[y1:y2, x1:x2].mean() <= MAX_MEAN_ABS
        assert diff.max() <= MAX_ABS
