"""A fake webcam for Chromium: a .y4m file of a real face photo that moves (shift, scale, slight rotation).

Chromium plays it with `--use-file-for-fake-video-capture=PATH` (it loops). Each frame is written as
`FRAME\\n` + the Y, U and V planes (4:2:0).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from pipelines.types import ImageRGB


def moving_face_frames(photo: ImageRGB, frames: int = 90, size: tuple[int, int] = (640, 480)) -> list[ImageRGB]:
    """Frames of `photo` centred in a (width, height) view, gently moving so tracking has work to do."""
    width, height = size
    base_scale = min(width / photo.shape[1], height / photo.shape[0]) * 0.95
    out = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        scale = base_scale * (1.0 + 0.06 * math.sin(phase))
        angle = 4.0 * math.sin(2 * phase)
        shift_x, shift_y = 25.0 * math.sin(phase), 12.0 * math.cos(phase)
        centre = (photo.shape[1] / 2, photo.shape[0] / 2)
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[0, 2] += width / 2 - centre[0] + shift_x
        matrix[1, 2] += height / 2 - centre[1] + shift_y
        warped = cv2.warpAffine(photo, matrix, (width, height), borderValue=(40, 40, 40))
        out.append(np.ascontiguousarray(warped, dtype=np.uint8))
    return out


def write_y4m(frames: list[ImageRGB], path: Path, fps: int = 30) -> Path:
    height, width = frames[0].shape[:2]
    with path.open("wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            handle.write(b"FRAME\n")
            handle.write(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path
