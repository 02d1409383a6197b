"""Helpers shared by the swap tests (no tests here): synthetic scenes, fake analyzers, tiny clips."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from pipelines.face_align import arcface_template
from pipelines.face_analysis import FaceAnalyzer
from pipelines.types import Face, ImageRGB
from tests.model_builders.detector import build_fake_scrfd, face_at

SCENE_FACES = (face_at(200, 320, 176), face_at(460, 320, 128))
"""Where the fake detector 'finds' faces in a 640x640 scene: a large one left, a smaller one right."""


def textured(height: int, width: int, seed: int, cell: int = 8) -> ImageRGB:
    """A smooth random colour texture (what a photo looks like to a warp: gradients, not noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(height // cell, 2), max(width // cell, 2), 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def two_face_scene(seed: int = 0) -> ImageRGB:
    """A 640x640 scene whose two 'faces' (at SCENE_FACES) carry different textures."""
    scene = textured(640, 640, seed, cell=32)
    for index, ((x1, y1, x2, y2), _) in enumerate(SCENE_FACES):
        x1, y1, x2, y2 = (int(v) for v in (x1, y1, x2, y2))
        scene[y1:y2, x1:x2] = textured(y2 - y1, x2 - x1, seed + 100 + index, cell=6)
    return scene


def fake_analyzer(tmp: Path, recognizer: Path | None, faces: tuple = SCENE_FACES, name: str = "scene") -> FaceAnalyzer:
    """A FaceAnalyzer on the fake SCRFD: it always 'finds' `faces` (none with faces=())."""
    detector = build_fake_scrfd(tmp / f"fake_scrfd_{name}.onnx", list(faces))
    return FaceAnalyzer.from_paths(detector, recognizer, warm_up=False)


def face_from_pose(cx: float, cy: float, scale: float, angle: float) -> Face:
    """A face whose 5 keypoints are the 128 px template turned by `angle` (radians), scaled, centred at (cx, cy)."""
    template = arcface_template(128) - 64.0
    c, s = np.cos(angle), np.sin(angle)
    kps = template @ (scale * np.array([[c, -s], [s, c]])).T + np.array([cx, cy])
    half = 64 * scale
    return Face((cx - half, cy - half, cx + half, cy + half), kps.astype(np.float32), 0.9)


def write_clip(path: Path, frames: list[ImageRGB], fps: int = 10) -> Path:
    """An H.264 MP4 of these RGB frames (even sizes), fast settings."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "12"})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def read_clip(path: Path) -> list[ImageRGB]:
    with av.open(str(path)) as container:
        return [np.asarray(frame.to_ndarray(format="rgb24"), np.uint8) for frame in container.decode(video=0)]


def write_audio_only(path: Path, seconds: float = 0.5, rate: int = 48000) -> Path:
    """An .mp4 holding only an AAC tone (no picture)."""
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        total, chunk = int(seconds * rate), 1024
        for start in range(0, total, chunk):
            t = np.arange(start, start + chunk) / rate
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG that is only a signature, an IHDR claiming width x height, and IEND (no pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path
