"""Scores over time for a clip or a live stream: smoothing, texture flicker, timeline, top frames.

`SpotHistory` belongs to ONE viewer (one clip, one live session): create one per session, never share
it. It keeps the smoothed score, the flicker of the face's fine texture (a regenerated face changes its
fine texture from frame to frame while the untouched surroundings do not), the timeline and the frames
that scored highest. `render_timeline` draws the series as an RGB picture with OpenCV.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.spot.signals import flicker
from pipelines.types import ImageRGB

FLICKER_REAL_LEVEL = 0.3
"""Flicker (log-ratio) below which texture changes count as normal. Simulated real clips measured -1.7 to
-0.05, simulated per-frame swaps 0.07 to 1.27 (evaluate.py); real talking faces are unmeasured, so stay cautious."""
FLICKER_WEIGHT = 1.0
"""Log-odds added per unit of flicker above the normal level (hand-set, see the model card)."""


def _logit(p: float) -> float:
    p = float(np.clip(p, 1e-4, 1 - 1e-4))
    return float(np.log(p / (1 - p)))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -40, 40))))


@dataclass
class TimelinePoint:
    """One scored frame."""

    frame: int  # frame index in the clip (or a counter for live)
    time: float | None  # seconds from the start, when known
    score: float  # this frame's score (highest face)
    smoothed: float  # smoothed score after this frame
    flicker: float | None  # texture flicker against the previous scored frame, when measurable

    def to_json(self) -> dict[str, object]:
        return {
            "frame": self.frame,
            "time": None if self.time is None else round(self.time, 3),
            "score": round(self.score, 4),
            "smoothed": round(self.smoothed, 4),
            "flicker": None if self.flicker is None else round(self.flicker, 4),
        }


@dataclass
class SpotHistory:
    """Per-viewer history: exponential smoothing of log-odds plus a flicker term."""

    smoothing: float = 0.3  # weight of the newest frame in the running average (0..1)
    top_k: int = 5  # how many top frames to remember
    timeline: list[TimelinePoint] = field(default_factory=list)
    _logit_avg: float | None = field(default=None, init=False)
    _flicker_avg: float | None = field(default=None, init=False)
    _last_texture: NDArray[np.float32] | None = field(default=None, init=False, repr=False)
    _top: list[tuple[float, int]] = field(default_factory=list, init=False)

    def add(
        self, frame_index: int, verdict: object, texture: NDArray[np.float32] | None = None, time: float | None = None
    ) -> float:
        """Add one frame's verdict (`ImageVerdict` or `FaceVerdict`); returns the smoothed score.

        `texture` is the main face's `FaceVerdict.texture` (taken from the verdict when omitted);
        consecutive textures give the flicker signal.
        """
        score = float(getattr(verdict, "score", 0.0))
        if texture is None:
            faces = getattr(verdict, "faces", None)
            main = faces[0] if faces else (None if faces is not None else verdict)
            texture = getattr(main, "texture", None)
        # 1. Flicker of the face's fine texture against the previous frame.
        frame_flicker = None
        if texture is not None and self._last_texture is not None:
            frame_flicker = flicker(self._last_texture, texture)
            a = self.smoothing
            prev = self._flicker_avg
            self._flicker_avg = frame_flicker if prev is None else (1 - a) * prev + a * frame_flicker
        self._last_texture = texture
        # 2. Smoothed log-odds, raised by flicker above the normal level.
        value = _logit(score)
        a = self.smoothing
        self._logit_avg = value if self._logit_avg is None else (1 - a) * self._logit_avg + a * value
        smoothed = _sigmoid(
            self._logit_avg + FLICKER_WEIGHT * max(0.0, (self._flicker_avg or 0.0) - FLICKER_REAL_LEVEL)
        )
        # 3. Timeline and top frames.
        self.timeline.append(TimelinePoint(frame_index, time, score, smoothed, frame_flicker))
        heapq.heappush(self._top, (score, frame_index))
        if len(self._top) > self.top_k:
            heapq.heappop(self._top)
        return smoothed

    @property
    def score(self) -> float:
        """The latest smoothed score (0 before any frame)."""
        return self.timeline[-1].smoothed if self.timeline else 0.0

    @property
    def flicker(self) -> float | None:
        """The running flicker signal (None until two frames with a face were seen)."""
        return self._flicker_avg

    def top_frames(self) -> list[tuple[int, float]]:
        """(frame index, score) of the highest-scoring frames, best first."""
        return [(index, score) for score, index in sorted(self._top, reverse=True)]

    def series(self) -> tuple[list[int], list[float], list[float]]:
        """Frame indices, raw scores and smoothed scores, for plotting."""
        return (
            [p.frame for p in self.timeline],
            [p.score for p in self.timeline],
            [p.smoothed for p in self.timeline],
        )


def render_timeline(history: SpotHistory, width: int = 640, height: int = 200) -> ImageRGB:
    """The score over time as an RGB plot: raw scores (grey dots), smoothed score (line), 0.5 threshold."""
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 40, 10, 10, 25
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(score: float) -> int:
        return int(top + (1.0 - score) * plot_h)

    cv2.rectangle(img, (left, top), (left + plot_w, top + plot_h), (200, 200, 200), 1)
    cv2.line(img, (left, y_of(0.5)), (left + plot_w, y_of(0.5)), (230, 120, 0), 1)
    for value in (0.0, 0.5, 1.0):
        cv2.putText(img, f"{value:.1f}", (4, y_of(value) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    frames, raw, smooth = history.series()
    if frames:
        lo, hi = min(frames), max(frames)
        span = max(hi - lo, 1)
        xs = [int(left + (f - lo) / span * plot_w) for f in frames]
        for x, s in zip(xs, raw, strict=True):
            cv2.circle(img, (x, y_of(s)), 2, (150, 150, 150), -1)
        pts = np.array([[x, y_of(s)] for x, s in zip(xs, smooth, strict=True)], np.int32)
        cv2.polylines(img, [pts], False, (200, 30, 30), 2)
        cv2.putText(img, f"frame {lo}", (left, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
        cv2.putText(img, f"{hi}", (left + plot_w - 30, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1)
    return img
