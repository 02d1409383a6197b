"""Follow faces between detections in a live stream: detect every few frames, track keypoints in between.

Per viewer: one `FaceTracker` lives in that viewer's session state; it holds the previous grey frame and
the faces found there. Detection runs on every `detect_every`-th frame (or when tracking is lost); in
between, the 5 keypoints are followed with pyramidal Lucas-Kanade optical flow and the box is moved by
the similarity transform that maps the old keypoints onto the new ones.

Two ways to detect:
- in line (clips): the frame waits for its detection, so every detected frame has exact faces;
- in the background (live, `TrackerSettings.background=True`): the detection runs in its own short-lived
  thread while the following frames go on with tracking, so the display never stalls for the detector
  (a stall of a detection every 12 frames cost the live view a quarter of its frame rate on 2 cores).
  When the detection is done, its faces are carried from the frame it saw to the current one by the same
  optical flow, and replace the tracked ones.
"""

from __future__ import annotations

import threading
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

DetectFn = Callable[[ImageRGB], list[Face]]


@dataclass(frozen=True)
class TrackerSettings:
    detect_every: int = 5  # run the detector on every n-th frame; follow keypoints in between
    max_flow_error: float = 12.0  # LK error above which a point counts as lost
    min_points: int = 4  # re-detect when fewer keypoints than this are followed reliably
    max_faces: int = 4  # faces followed at once (largest first)
    search_every: int = 1  # with no face followed, detect on every n-th frame (clips: 1, no face is missed)
    background: bool = False  # detect in a background thread while the frames go on (live view)


class BackgroundDetection:
    """One detection running in its own thread on one frame; the thread ends with the detection."""

    def __init__(self, frame: ImageRGB, gray: np.ndarray, detect: DetectFn) -> None:
        self.gray, self.frame_shape = gray, frame.shape[:2]
        self.faces: list[Face] | None = None
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(frame, detect), name="live-detect", daemon=True)
        self._thread.start()

    def _run(self, frame: ImageRGB, detect: DetectFn) -> None:
        try:
            self.faces = detect(frame)
        except BaseException as error:  # handed to the display thread, which reports it
            self.error = error
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


@dataclass
class FaceTracker:
    """Per-viewer tracking state. Not thread-safe: one stream calls it, one frame at a time."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    faces: list[Face] = field(default_factory=list)
    frames_since_detection: int = 0
    detections: int = 0
    pending: BackgroundDetection | None = None
    _prev_gray: np.ndarray | None = None
    _prev_scale: float = 1.0

    def reset(self) -> None:
        """Forget the faces; a detection still running is dropped (its thread ends by itself)."""
        self.faces = []
        self.frames_since_detection = 0
        self.pending = None
        self._prev_gray = None

    def update(self, frame: ImageRGB, detect: DetectFn, background: bool | None = None) -> list[Face]:
        """Faces in this frame: detected (every n-th frame or when lost) or followed from the last frame.

        `background`: overrides the settings for this frame (an API call that sends one image wants the faces
        in that image, so it detects in line).
        """
        gray, scale = _small_gray(frame)
        if self.settings.background if background is None else background:
            self._update_in_background(frame, gray, scale, detect)
        else:
            self._update_in_line(frame, gray, scale, detect)
        self._prev_gray, self._prev_scale = gray, scale
        return self.faces

    def _update_in_line(self, frame: ImageRGB, gray: np.ndarray, scale: float, detect: DetectFn) -> None:
        every = self.settings.detect_every if self.faces else self.settings.search_every
        due = self.frames_since_detection + 1 >= every
        tracked: list[Face] | None = None
        previous = self._previous_gray(gray, scale)
        if not due and previous is not None:
            # Follow the faces; with none in view, wait for the next search (live: keeps the CPU for the page).
            tracked = self._follow(self.faces, previous, gray, scale) if self.faces else []
        if tracked is None:
            self.faces = detect(frame)[: self.settings.max_faces]
            self.frames_since_detection = 0
            self.detections += 1
        else:
            self.faces = tracked
            self.frames_since_detection += 1

    def _update_in_background(self, frame: ImageRGB, gray: np.ndarray, scale: float, detect: DetectFn) -> None:
        # 1. Follow the faces from the last frame to this one (a lost face asks for a detection at once).
        lost = False
        if self.faces:
            previous = self._previous_gray(gray, scale)
            followed = self._follow(self.faces, previous, gray, scale) if previous is not None else None
            lost = followed is None
            self.faces = followed or []
        self.frames_since_detection += 1
        # 2. A finished detection replaces them, carried from the frame it saw to this one.
        pending = self.pending
        if pending is not None and pending.done():
            self.pending = None
            if pending.error is not None:
                raise pending.error
            detected = (pending.faces or [])[: self.settings.max_faces]
            if pending.frame_shape != frame.shape[:2]:  # the camera changed size meanwhile: look again
                lost, self.faces = True, []
            else:
                carried = self._follow(detected, pending.gray, gray, scale) if detected else []
                self.faces = carried if carried is not None else detected
        # 3. Start the next detection when one is due and none is running.
        every = self.settings.detect_every if self.faces else self.settings.search_every
        if self.pending is None and (lost or self.frames_since_detection >= every):
            self.pending = BackgroundDetection(frame, gray, detect)
            self.frames_since_detection = 0
            self.detections += 1

    def _previous_gray(self, gray: np.ndarray, scale: float) -> np.ndarray | None:
        """The last frame's small grey copy if that frame had this one's size (the copies alone cannot tell)."""
        same = self._prev_gray is not None and self._prev_gray.shape == gray.shape and self._prev_scale == scale
        return self._prev_gray if same else None

    def _follow(self, faces: list[Face], prev: np.ndarray, gray: np.ndarray, scale: float) -> list[Face] | None:
        """Move every face by optical flow of its keypoints; None when any face is lost."""
        points = np.concatenate([f.kps for f in faces]).astype(np.float32) * scale
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
        for i, face in enumerate(faces):
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
