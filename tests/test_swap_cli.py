"""`python -m pipelines.swap`: real detector on real photos, bad inputs, exit codes, no partial outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipelines.face_analysis import FaceAnalyzer
from pipelines.provenance import label_present
from pipelines.provenance.label import label_layout
from pipelines.swap import main
from tests.conftest import ROOT, read_rgb
from tests.model_builders.detector import build_fake_scrfd
from tests.model_builders.swapper import build_tiny_inswapper
from tests.test_swap_support import (
    SCENE_FACES,
    png_claiming,
    read_clip,
    two_face_scene,
    write_audio_only,
    write_clip,
)

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

UNCHANGED_TOLERANCE = 2
"""A pixel counts as unchanged when no channel moved by more than this many grey levels: a 128 px crop
warped out of the frame and back re-samples the pixels the swapper left alone by +-1-2 levels (InsightFace's
paste-back has the same property)."""


@pytest.fixture(scope="module")
def tiny_swapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_inswapper(tmp_path_factory.mktemp("swapper") / "tiny_inswapper.onnx")


@pytest.fixture(scope="module")
def real_models(real_detector_path: Path, fake_arcface_path: Path, tiny_swapper: Path) -> list[str]:
    return [
        "--detector",
        str(real_detector_path),
        "--recognizer",
        str(fake_arcface_path),
        "--swapper",
        str(tiny_swapper),
    ]


def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.swap", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _enlarged_boxes_mask(shape: tuple[int, ...], boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * 1.25, (y2 - y1) * 1.25
        inside[max(int(cy - h / 2), 0) : int(cy + h / 2) + 1, max(int(cx - w / 2), 0) : int(cx + w / 2) + 1] = True
    return inside


def _face_changed(before: np.ndarray, after: np.ndarray, box: tuple[float, ...]) -> float:
    x1, y1, x2, y2 = (int(v) for v in box)
    return float(np.abs(before[y1:y2, x1:x2].astype(int) - after[y1:y2, x1:x2].astype(int)).mean())


def _assert_clean_failure(code: int, err: str, output: Path, *expected: str) -> None:
    """Exit 2, every expected phrase in the message, no traceback, nothing written."""
    assert code == 2, err
    assert all(phrase.lower() in err.lower() for phrase in expected), err
    assert "Traceback" not in err
    assert not output.exists()
    assert not list(output.parent.glob(".partial-*"))


@pytest.mark.shared
def test_all_faces_on_pair_changes_both_and_nothing_else(
    shared_dir: Path, real_detector_path: Path, real_models: list[str], tmp_path: Path
) -> None:
    target = shared_dir / "data" / "scenes" / "pair.jpg"
    output = tmp_path / "pair_swapped.png"
    source = shared_dir / "data" / "faces" / "img1.jpg"
    done = _run_cli(["--source", str(source), "--target", str(target), "--output", str(output), *real_models, "--json"])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["engine"] == "inswapper" and summary["frames"] == 1 and summary["faces_swapped"] == 2
    assert isinstance(summary["seconds"], float)
    assert {m["role"]: m["verified"] for m in summary["models"]} == {
        "detector": False,
        "recognizer": False,
        "swapper": False,
    }
    before, after = read_rgb(target), read_rgb(output)
    boxes = [f.box for f in FaceAnalyzer.from_paths(real_detector_path, warm_up=False).detect(before)]
    assert len(boxes) == 2
    assert all(_face_changed(before, after, box) > 10 for box in boxes)
    moved = np.abs(before.astype(int) - after.astype(int)).max(axis=2) > UNCHANGED_TOLERANCE
    outside = ~_enlarged_boxes_mask(before.shape, boxes)
    # The visible "AI-generated" badge is a required change (provenance issue): it is there, and its
    # corner is not counted as a change outside the faces.
    assert label_present(after)
    layout = label_layout(after.shape[0], after.shape[1])
    assert layout is not None
    x0, y0, x1, y1 = layout.box
    outside[y0:y1, x0:x1] = False
    assert 1.0 - moved[outside].mean() >= 0.99


@pytest.mark.shared
def test_largest_changes_exactly_one_face(
    shared_dir: Path,
    real_detector_path: Path,
    real_models: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    target = shared_dir / "data" / "scenes" / "pair.jpg"
    output = tmp_path / "largest.png"
    source = shared_dir / "data" / "faces" / "img1.jpg"
    code = main(
        [
            "--source",
            str(source),
            "--target",
            str(target),
            "--output",
            str(output),
            "--faces",
            "largest",
            *real_models,
            "--json",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["faces_swapped"] == 1
    before, after = read_rgb(target), read_rgb(output)
    faces = FaceAnalyzer.from_paths(real_detector_path, warm_up=False).detect(before)
    changed = [_face_changed(before, after, f.box) > 10 for f in faces]
    assert changed == [True, False]  # largest first


@pytest.mark.shared
def test_classic_engine_on_a_clip_through_the_cli(
    shared_dir: Path, real_detector_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = read_rgb(shared_dir / "data" / "scenes" / "pair.jpg")
    blank = np.full_like(scene, 90)
    clip = write_clip(tmp_path / "pair.mp4", [scene, scene, blank, scene])
    output = tmp_path / "out.mp4"
    source = shared_dir / "data" / "faces" / "img1.jpg"
    args = ["--source", str(source), "--target", str(clip), "--output", str(output), "--engine", "classic"]
    assert main([*args, "--detector", str(real_detector_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 4 and summary["faces_swapped"] == 6 and summary["frames_with_swaps"] == 3
    assert [m["role"] for m in summary["models"]] == ["detector"]
    frames = read_clip(output)
    assert len(frames) == 4
    originals = read_clip(clip)
    assert np.abs(frames[2].astype(int) - originals[2].astype(int)).mean() < 3  # the faceless frame passes
    assert np.abs(frames[0].astype(int) - originals[0].astype(int)).mean() > 3


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["odd", "grey", "rgba"])
def test_odd_sizes_grey_and_rgba_photos_work(
    shared_dir: Path, real_models: list[str], tmp_path: Path, kind: str
) -> None:
    photo: Image.Image = Image.open(shared_dir / "data" / "scenes" / "pair.jpg")
    source: Image.Image = Image.open(shared_dir / "data" / "faces" / "img1.jpg")
    if kind == "odd":
        photo = photo.crop((0, 0, 399, 327))
    elif kind == "grey":
        photo, source = photo.convert("L"), source.convert("L")
    else:
        photo, source = photo.convert("RGBA"), source.convert("RGBA")
    photo.save(tmp_path / "target.png")
    source.save(tmp_path / "source.png")
    output = tmp_path / "out.png"
    code = main(
        [
            "--source",
            str(tmp_path / "source.png"),
            "--target",
            str(tmp_path / "target.png"),
            "--output",
            str(output),
            *real_models,
        ]
    )
    assert code == 0
    result = Image.open(output)
    assert result.size == photo.size and result.mode == "RGB"


@pytest.mark.shared
def test_bad_inputs_get_exit_2_and_a_clear_message(
    shared_dir: Path, real_models: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    face = str(shared_dir / "data" / "faces" / "img1.jpg")
    scene = str(shared_dir / "data" / "scenes" / "pair.jpg")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "noise.jpg").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "notes.mp4").write_text("this is not a video\n")
    write_audio_only(tmp_path / "sound.mp4")
    png_claiming(tmp_path / "huge.png", 30000, 30000)
    cases = [
        (tmp_path / "wall.png", scene, "out.png", "No face found in the source photo wall.png"),
        (face, tmp_path / "empty.jpg", "out.png", "empty.jpg", "empty"),
        (tmp_path / "noise.jpg", scene, "out.png", "noise.jpg", "photo"),
        (face, tmp_path / "notes.mp4", "out.mp4", "notes.mp4", "video"),
        (face, tmp_path / "sound.mp4", "out.mp4", "sound.mp4", "no video picture"),
        (face, tmp_path / "huge.png", "out.png", "huge.png", "too large"),
        (tmp_path / "huge.png", scene, "out.png", "huge.png", "too large"),
        (face, scene, "out.gif", "written as .jpg or .png"),
    ]
    for source, target, name, *expected in cases:
        output = tmp_path / "outputs" / name
        output.parent.mkdir(exist_ok=True)
        code = main(["--source", str(source), "--target", str(target), "--output", str(output), *real_models])
        _assert_clean_failure(code, capsys.readouterr().err, output, *(str(e) for e in expected))


@pytest.mark.shared
def test_bad_input_through_a_real_process(shared_dir: Path, real_models: list[str], tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("hello")
    output = tmp_path / "out.mp4"
    source = str(shared_dir / "data" / "faces" / "img1.jpg")
    done = _run_cli(
        ["--source", source, "--target", str(tmp_path / "notes.mp4"), "--output", str(output), *real_models]
    )
    _assert_clean_failure(done.returncode, done.stderr, output, "notes.mp4", "video")
    assert done.stdout == ""


def test_cli_without_shared_models_fake_detector(
    tmp_path: Path, fake_arcface_path: Path, tiny_swapper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command on the fake detector (runs everywhere): reference mode, many-to-many, model errors."""
    detector = build_fake_scrfd(tmp_path / "det.onnx", list(SCENE_FACES))
    scene = two_face_scene(seed=3)
    Image.fromarray(scene).save(tmp_path / "scene.png")
    # A reference photo whose largest face is the scene's RIGHT person (the fake detector always finds
    # the same two boxes, so put the right face's pixels in the left box).
    (lx1, ly1, lx2, ly2), _ = SCENE_FACES[0]
    (rx1, ry1, rx2, ry2), _ = SCENE_FACES[1]
    right_ref = scene.copy()
    right_face = scene[int(ry1) : int(ry2), int(rx1) : int(rx2)]
    right_ref[int(ly1) : int(ly2), int(lx1) : int(lx2)] = cv2.resize(
        right_face, (int(lx2) - int(lx1), int(ly2) - int(ly1))
    )
    Image.fromarray(right_ref).save(tmp_path / "right_ref.png")
    for seed in (4, 5):
        Image.fromarray(two_face_scene(seed=seed)).save(tmp_path / f"src{seed}.png")
    models = ["--detector", str(detector), "--recognizer", str(fake_arcface_path), "--swapper", str(tiny_swapper)]
    output = tmp_path / "out.png"
    sources = ["--source", str(tmp_path / "src4.png"), "--source", str(tmp_path / "src5.png")]
    base = ["--target", str(tmp_path / "scene.png"), "--output", str(output), "--faces", "reference", "--json"]
    refs = ["--reference", str(tmp_path / "right_ref.png"), "--reference", str(tmp_path / "scene.png")]
    # 1. Two sources and three references cannot be paired.
    code = main([*sources, *base, *refs, "--reference", str(tmp_path / "scene.png"), *models])
    _assert_clean_failure(code, capsys.readouterr().err, output, "one source per reference")
    # 2. Many-to-many: source 1 -> the right person, source 2 -> the left person.
    code = main([*sources, *base, *refs, *models])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["faces_swapped"] == 2 and summary["faces"] == "reference"
    # 3. A model file that does not exist: exit 1 with a message, no traceback.
    missing = ["--detector", str(tmp_path / "missing.onnx"), *models[2:]]
    code = main(
        [
            "--source",
            str(tmp_path / "src4.png"),
            "--target",
            str(tmp_path / "scene.png"),
            "--output",
            str(output),
            *missing,
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "does not exist" in err and "Traceback" not in err
