"""Face analysis: SCRFD decoding, the analyzer on tiny graphs, and the real SCRFD on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import InputError, ModelError
from pipelines.face_analysis import FaceAnalyzer, cosine_similarity
from pipelines.scrfd import anchor_centers, decode, letterbox, nms
from pipelines.types import AnalysisSettings, Face
from tests.conftest import read_rgb
from tests.model_builders.detector import build_fake_scrfd, face_at
from tests.model_builders.recognizer import build_fake_arcface


@pytest.fixture(scope="module")
def two_face_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    faces = [face_at(200, 240, 160), face_at(456, 240, 96)]
    return build_fake_scrfd(tmp_path_factory.mktemp("det") / "fake_scrfd.onnx", faces)


def test_anchor_centers_are_row_major_with_two_anchors_per_cell() -> None:
    centers = anchor_centers(64, 96, 32)
    assert centers.shape == (2 * 3 * 2, 2)
    np.testing.assert_array_equal(centers[:4], [[0, 0], [0, 0], [32, 0], [32, 0]])
    np.testing.assert_array_equal(centers[-1], [64, 32])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 100, 100], [5, 5, 105, 105], [200, 200, 260, 260]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert list(nms(boxes, scores, 0.4)) == [1, 2]


def test_letterbox_keeps_aspect_and_reports_scale() -> None:
    image = np.full((300, 1200, 3), 200, np.uint8)
    canvas, scale = letterbox(image, (640, 640))
    assert scale == pytest.approx(640 / 1200)
    assert canvas.shape == (640, 640, 3)
    assert canvas[:160].min() == 200 and canvas[161:].max() == 0


def test_decode_maps_distances_back_to_image_pixels() -> None:
    sizes = [(640 // s) ** 2 * 2 for s in (8, 16, 32)]
    outs = [np.zeros((1, n, 1), np.float32) for n in sizes]
    outs += [np.zeros((1, n, 4), np.float32) for n in sizes]
    outs += [np.zeros((1, n, 10), np.float32) for n in sizes]
    # One confident anchor at stride 32, cell (x=3, y=2) -> centre (96, 64) in network pixels.
    index = (2 * 20 + 3) * 2
    outs[2][0, index, 0] = 0.9
    outs[5][0, index] = [1, 1, 2, 2]  # distances in strides: left, top, right, bottom
    outs[8][0, index] = np.arange(10) / 10.0
    found = decode(outs, (640, 640), scale=0.5, score_threshold=0.5, iou_threshold=0.4)
    assert len(found) == 1
    np.testing.assert_allclose(found.boxes[0], np.array([96 - 32, 64 - 32, 96 + 64, 64 + 64]) / 0.5)
    np.testing.assert_allclose(found.kps[0, 1], (np.array([96, 64]) + np.array([0.2, 0.3]) * 32) / 0.5, atol=1e-4)


def test_analyzer_returns_immutable_faces_largest_first(two_face_detector: Path, fake_arcface_path: Path) -> None:
    analyzer = FaceAnalyzer.from_paths(two_face_detector, fake_arcface_path)
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    faces = analyzer.analyze(image)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    np.testing.assert_allclose(faces[0].box, (120, 160, 280, 320), atol=1e-3)
    for face in faces:
        assert face.embedding is not None and face.embedding.shape == (512,)
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(ValueError):
            face.kps[0, 0] = 1.0  # read-only
    assert cosine_similarity(faces[0].embedding, faces[1].embedding) < 0.999
    assert len(analyzer.analyze(image, max_faces=1)) == 1


def test_analyzer_settings_filter_small_faces(two_face_detector: Path) -> None:
    analyzer = FaceAnalyzer.from_paths(two_face_detector, settings=AnalysisSettings(min_face_size=120))
    faces = analyzer.detect(np.zeros((480, 640, 3), np.uint8))
    assert [round(f.size) for f in faces] == [160]


def test_analyzer_refuses_non_images(two_face_detector: Path) -> None:
    analyzer = FaceAnalyzer.from_paths(two_face_detector)
    with pytest.raises(InputError, match="RGB photo"):
        analyzer.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(InputError, match="too small"):
        analyzer.detect(np.zeros((8, 8, 3), np.uint8))


def test_face_record_is_frozen() -> None:
    face = Face((0, 0, 10, 20), np.zeros((5, 2)), 0.9)
    with pytest.raises(AttributeError):
        face.score = 0.1  # type: ignore[misc]
    assert face.width == 10 and face.height == 20 and face.size == pytest.approx(np.sqrt(200))


def test_loading_a_non_detector_is_a_clear_model_error(fake_arcface_path: Path) -> None:
    with pytest.raises(ModelError, match="not an SCRFD"):
        FaceAnalyzer.from_paths(fake_arcface_path)


def test_loading_a_corrupt_file_is_a_clear_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="could not be loaded"):
        FaceAnalyzer.from_paths(bad)


def test_fake_recognizer_is_deterministic(tmp_path: Path, fake_arcface_path: Path) -> None:
    again = build_fake_arcface(tmp_path / "again.onnx")
    assert again.read_bytes() == fake_arcface_path.read_bytes()


# --- The real SCRFD detector on real photos (../shared) -------------------------------------------


@pytest.fixture(scope="module")
def real_analyzer(real_detector_path: Path) -> FaceAnalyzer:
    return FaceAnalyzer.from_paths(real_detector_path)


SINGLE_FACE_EXCLUDED = {"couple.jpg", "img54.jpg", "img62.jpg", "selfie-many-people.jpg"}


@pytest.mark.shared
def test_real_detector_finds_one_face_in_single_face_photos(real_analyzer: FaceAnalyzer, shared_dir: Path) -> None:
    photos = sorted(p for p in (shared_dir / "data" / "faces").glob("*.jpg") if p.name not in SINGLE_FACE_EXCLUDED)
    assert len(photos) == 60
    counts = {p.name: len(real_analyzer.detect(read_rgb(p))) for p in photos}
    exactly_one = sum(1 for c in counts.values() if c == 1)
    assert exactly_one >= 59, {k: v for k, v in counts.items() if v != 1}


@pytest.mark.shared
def test_real_detector_on_group_scenes(real_analyzer: FaceAnalyzer, shared_dir: Path) -> None:
    assert len(real_analyzer.detect(read_rgb(shared_dir / "data" / "scenes" / "pair.jpg"))) == 2
    assert len(real_analyzer.detect(read_rgb(shared_dir / "data" / "scenes" / "crowd.jpg"))) >= 120


@pytest.mark.shared
def test_real_detector_agrees_with_insightface(
    real_analyzer: FaceAnalyzer, shared_dir: Path, real_detector_path: Path
) -> None:
    from insightface.model_zoo.scrfd import SCRFD

    reference = SCRFD(str(real_detector_path))
    reference.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    for name in ("img1.jpg", "img25.jpg", "couple.jpg"):
        rgb = read_rgb(shared_dir / "data" / "faces" / name)
        ours = sorted(real_analyzer.detect(rgb), key=lambda f: f.box[0])
        boxes, kpss = reference.detect(np.ascontiguousarray(rgb[:, :, ::-1]), input_size=(640, 640))
        order = np.argsort(boxes[:, 0])
        assert len(ours) == len(boxes)
        for face, i in zip(ours, order, strict=True):
            side = face.size
            assert np.abs(np.array(face.box) - boxes[i, :4]).max() < 0.02 * side
            assert np.abs(face.kps - kpss[i]).max() < 0.02 * side


@pytest.mark.shared
def test_real_detector_embeddings_are_unit_length(
    real_detector_path: Path, fake_arcface_path: Path, shared_dir: Path
) -> None:
    analyzer = FaceAnalyzer.from_paths(real_detector_path, fake_arcface_path)
    faces = analyzer.analyze(read_rgb(shared_dir / "data" / "scenes" / "pair.jpg"))
    assert len(faces) == 2
    assert all(abs(float(np.linalg.norm(f.embedding)) - 1.0) < 1e-5 for f in faces if f.embedding is not None)


def test_a_detector_whose_outputs_do_not_follow_the_input_size_keeps_its_own_size(two_face_detector: Path) -> None:
    # The test graph returns constant 640x640-sized outputs, so a free input size would break it: keep 640.
    detector = FaceAnalyzer.from_paths(two_face_detector).detector
    assert detector.fixed_size == (640, 640) and detector.any_size is None
    assert detector.input_size_for(320) == (640, 640)


@pytest.mark.shared
def test_the_real_640_export_also_runs_smaller_and_finds_the_same_faces(
    real_analyzer: FaceAnalyzer, real_detector_path: Path, shared_dir: Path
) -> None:
    from pipelines import onnx_runtime
    from pipelines.scrfd import ScrfdDetector

    # A free-size twin serves other sizes; 640x640 still runs on the file as shipped.
    assert real_analyzer.detector.any_size is not None
    assert real_analyzer.detector.input_size_for(320) == (320, 320)
    as_shipped = ScrfdDetector(onnx_runtime.create_session(real_detector_path))
    assert as_shipped.fixed_size == (640, 640)
    for name in ("img1.jpg", "img2.jpg", "img3.jpg"):
        photo = read_rgb(shared_dir / "data" / "faces" / name)
        shipped = as_shipped.detect(photo, 640)
        freed = real_analyzer.detector.detect(photo, 640)
        assert np.array_equal(freed.boxes, shipped.boxes) and np.array_equal(freed.kps, shipped.kps)  # bit for bit
        small = real_analyzer.detector.detect(photo, 320)
        assert len(small) == len(shipped) == 1
        overlap = _iou(small.boxes[0], shipped.boxes[0])
        assert overlap > 0.8, (name, overlap)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def test_a_freed_graph_that_does_not_load_leaves_the_detector_as_shipped(
    two_face_detector: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.scrfd

    monkeypatch.setattr(pipelines.scrfd, "any_size_variant", lambda path: b"not an onnx model")
    detector = FaceAnalyzer.from_paths(two_face_detector).detector
    assert detector.any_size is None and detector.fixed_size == (640, 640)
