"""Small media files for the C2PA tests: a JPEG/PNG, an MP4, and a copy with bytes flipped in its data."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def write_image(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (160, 120), interpolation=cv2.INTER_CUBIC)
    assert cv2.imwrite(str(path), image)
    return path


def write_mp4(path: Path, frames: int = 6) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = np.full((48, 64, 3), 30 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def flip_bytes(src: Path, dst: Path, marker: bytes, offset: int) -> Path:
    """Copy `src` with a few bytes inverted `offset` bytes after the last `marker` (inside the media data)."""
    data = bytearray(src.read_bytes())
    position = data.rfind(marker) + offset
    assert len(marker) <= position < len(data) - 4
    for index in range(position, position + 4):
        data[index] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst
