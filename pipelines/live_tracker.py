"""Follow faces between detections in a live stream: detect every few frames, track keypoints in between.

Per viewer: one `FaceTracker` lives in that viewer's session state; it holds the previous grey frame and
the faces found there. Detection runs on every `detect_every`-th frame (or when tracking is lost); in
between, the 5 keypoints are followed with pyramidal Lucas-Kanade optical flow and the box is moved by
the similarity transform that maps the old keypoints onto the new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipelines.face_align import estimate_similarity, transform_points
from pipelines.types import Face, ImageRGB

TRACK_WIDTH = 320  # optical flow runs on a frame this wide (cheap, and enough for 5 points)
LK_WINDOW = (21, 21)
LK_LEVELS = 3
LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)


@dataclass(frozen=True)
class TrackerSettings:
    detect_every: int = 5  # run the detector on every n-th frame; follow keypoints in between
    max_flow_error: float = 12.0  # LK error above which a point counts as lost
    min_points: int = 4  # re-detect when fewer keypoints than this are followed reliably
    max_faces: int = 4  # faces followed at once (largest first)
    search_every: int = 1  # with no face followed, detect on every n-th frame (clips: 1, no face is missed)


@dataclass
class FaceTracker:
    """Per-viewer tracking state. Not thread-safe: one stream calls it, one frame at a time."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    faces: list[Face] = field(default_factory=list)
    frames_since_detection: int = 0
    detections: int = 0
    _prev_gray: np.ndarray | None = None
    _prev_scale: float = 1.0

    def reset(self) -> None:
        self.faces = []
        self.frames_since_detection = 0
        self._prev_gray = None

    def update(self, frame: ImageRGB, detect: Callable[[ImageRGB], list[Face]]) -> list[Face]:
        """Faces in this frame: detected (every n-th frame or when lost) or followed from the last frame."""
        gray, scale = _small_gray(frame)
        every = self.settings.detect_every if self.faces else self.settings.search_every
        due = self.frames_since_detection + 1 >= every
        tracked: list[Face] | None = None
        if not due and self._prev_gray is not None and self._prev_gray.shape == gray.shape:
            # Follow the faces; with none in view, wait for the next search (live: keeps the CPU for the page).
            tracked = self._follow(self._prev_gray, gray, scale) if self.faces else []
        if tracked is None:
            self.faces = detect(frame)[: self.settings.max_faces]
            self.frames_since_detection = 0
            self.detections += 1
        else:
            self.faces = tracked
            self.frames_since_detection += 1
        self._prev_gray, self._prev_scale = gray, scale
        return self.faces

    def _follow(self, prev: np.ndarray, gray: np.ndarray, scale: float) -> list[Face] | None:
        """Move every face by optical flow of its keypoints; None when any face is lost."""
        points = np.concatenate([f.kps for f in self.faces]).astype(np.float32) * scale
        start = points.reshape(-1, 1, 2)
        result = cv2.calcOpticalFlowPyrLK(
            prev, gray, start, start.copy(), winSize=LK_WINDOW, maxLevel=LK_LEVELS, criteria=LK_CRITERIA
        )
        moved_raw, status, error = (np.asarray(r) for r in result)
        if moved_raw.size != points.size:
            return None
        moved = moved_raw.reshape(-1, 2) / scale
        good = (status.reshape(-1) == 1) & (error.reshape(-1) < self.settings.max_flow_error)
        followed = []
        for i, face in enumerate(self.faces):
            ok = good[i * 5 : (i + 1) * 5]
            if ok.sum() < self.settings.min_points:
                return None
            new_kps = moved[i * 5 : (i + 1) * 5]
            # The similarity fitted on reliable points moves the box and repairs any unreliable point.
            motion = estimate_similarity(face.kps[ok], new_kps[ok])
            kps = transform_points(face.kps, motion)
            corners = transform_points(np.array([face.box[:2], face.box[2:]], np.float32), motion)
            box = (*corners.min(axis=0), *corners.max(axis=0))
            followed.append(Face(box, kps, face.score, face.embedding, None))
        return followed


def _small_gray(frame: ImageRGB) -> tuple[np.ndarray, float]:
    scale = min(1.0, TRACK_WIDTH / frame.shape[1])
    small = frame if scale == 1.0 else cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), scale
