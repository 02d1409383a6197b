"""The detector on real photos (needs ../shared): CLI JSON contract, clips, and a weights regression check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.spot import Spotter
from pipelines.spot.data import PhotoFace, pseudo_fake_samples
from pipelines.spot.evaluate import score_samples
from pipelines.spot.metrics import roc_auc
from pipelines.spot.model import WEIGHTS_PATH

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.shared


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.detect", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_photo_json_contract(shared_dir: Path, real_detector_path: Path) -> None:
    result = run_cli(str(shared_dir / "data" / "faces" / "couple.jpg"), "--json", "--detector", str(real_detector_path))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert 0.0 <= data["score"] <= 1.0
    assert len(data["faces"]) == 2
    for face in data["faces"]:
        assert len(face["box"]) == 4 and 0.0 <= face["score"] <= 1.0
        assert isinstance(face["signals"], dict) and all(isinstance(v, float) for v in face["signals"].values())
        assert face["explanations"]
    assert data["score"] == max(f["score"] for f in data["faces"])


def test_bad_inputs_exit_2_without_traceback(tmp_path: Path, real_detector_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 127, np.uint8))
    for media in (broken, blank, tmp_path / "missing.jpg", tmp_path / "notes.txt"):
        if media.suffix == ".txt":
            media.write_text("hello")
        result = run_cli(str(media), "--json", "--detector", str(real_detector_path))
        assert result.returncode == 2, (media, result.stderr)
        assert "Traceback" not in result.stderr and result.stderr.startswith("error:")


def write_clip(path: Path, image: np.ndarray, frames: int = 6, fps: int = 4) -> None:
    """A short H.264 clip of a photo moving by a few pixels per frame."""
    height, width = (s // 2 * 2 for s in image.shape[:2])
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            shifted = np.roll(image, 2 * i, axis=1)[:height, :width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(shifted), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_clip_json_has_frames_and_timeline(tmp_path: Path, shared_dir: Path, real_detector_path: Path) -> None:
    image = load_image(shared_dir / "data" / "faces" / "img10.jpg")
    clip = tmp_path / "clip.mp4"
    write_clip(clip, image)
    result = run_cli(str(clip), "--json", "--detector", str(real_detector_path), "--sample-fps", "4")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert 0.0 <= data["score"] <= 1.0
    assert len(data["frames"]) == 6 and len(data["timeline"]) == 6
    assert {"frame", "score", "smoothed"} <= set(data["timeline"][0])
    assert data["faces"] and data["top_frames"]


def test_committed_weights_still_detect_held_out_pseudo_fakes(shared_dir: Path, real_detector_path: Path) -> None:
    """Regression check: a small held-out set (identities never used in training), relaxed thresholds."""
    recipe = json.loads(WEIGHTS_PATH.read_text())["recipe"]
    names = recipe["held_out_photos"][:10]
    analyzer = FaceAnalyzer.from_paths(real_detector_path)
    faces, images = [], {}
    for i, name in enumerate(names):
        images[name] = load_image(shared_dir / "data" / "faces" / name)
        face = analyzer.detect(images[name])[0]
        faces.append(PhotoFace(name, i, face.box, face.kps, face.size))
    spotter = Spotter()  # the committed weights, with the texture net when they use it
    samples = pseudo_fake_samples(faces, images, 4, 99, 0.0, keep_crops=spotter.texture_net is not None)
    scores = score_samples(spotter, samples)
    assert roc_auc(samples.labels, scores) >= 0.8
    assert float(np.mean(scores[samples.labels == 0] >= 0.5)) <= 0.25
