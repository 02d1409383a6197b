"""The live webcam path: short and bounded per frame, with the heavy swap decoupled when it is slow.

Per displayed frame (`LiveSession.process`):
1. find faces: detect every few frames in a background thread, follow the 5 keypoints in between and
   while a detection runs (`FaceTracker`), so no displayed frame waits for the detector;
2. swap:
   - direct mode (the classic engine, or a swapper that keeps up, e.g. on a GPU): swap every frame;
   - decoupled mode (a slow swapper on a CPU): hand the newest aligned 128 px crops to this viewer's
     `SwapWorker` and, without waiting, re-warp the most recent swapped 128 px faces onto where the faces
     are NOW (this frame's alignment), so the swapped face follows the head at display rate while its
     identity refreshes at swap rate;
3. post-process what was swapped (visible label, invisible watermark) and let the detector score it.

Everything here belongs to ONE viewer and lives in that viewer's session state; the models it uses are
the shared read-only ones passed in `LiveModels`. Nothing from the stream is written to disk.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pipelines.face_align import norm_crop
from pipelines.live_tracker import FaceTracker, TrackerSettings
from pipelines.live_worker import SwapJob, SwapWorker
from pipelines.paste_back import paste_back
from pipelines.swap_engines import PreparedSource, SwapEngine
from pipelines.types import Face, ImageRGB, SwapSettings

Mode = Literal["direct", "decoupled"]
DetectFn = Callable[[ImageRGB], list[Face]]
PostProcessFn = Callable[[ImageRGB, list[Face]], ImageRGB]  # label + watermark on swapped output
ScoreFn = Callable[[ImageRGB, list[Face]], Any]  # detector verdict for the displayed frame


@dataclass(frozen=True)
class LiveSettings:
    detect_every: int = 12  # detector on every n-th frame (0.8 s at 15 fps), keypoint tracking in between
    search_every: int = 3  # with no face followed (none in view, or one missed), look again every n-th frame
    max_faces: int = 2  # faces swapped at once in the live view (largest first)
    direct_budget_s: float = 0.045  # a swapper faster than this per face swaps every frame directly
    idle_stop_s: float = 0.6  # the swap worker stops (cutting a running swap short) after this long without frames
    score_every: int = 6  # the detector scores every n-th displayed frame (2-3 times a second)
    background_detection: bool = True  # the face detector runs beside the display path, never blocking it


@dataclass(frozen=True)
class LiveModels:
    """Shared, read-only things the live path calls (the same for every viewer)."""

    detect: DetectFn
    engine: SwapEngine
    post_process: PostProcessFn | None = None
    score: ScoreFn | None = None


@dataclass(frozen=True)
class LiveStats:
    display_fps: float
    swaps_per_second: float
    latency_ms: float  # median time from a frame's arrival to its swapped result (server side)
    face_age_ms: float | None  # how old the face behind the shown swap is (decoupled mode)
    mode: Mode
    faces: int
    message: str

    def as_text(self) -> str:
        age = f" · swapped face {self.face_age_ms:.0f} ms old" if self.face_age_ms is not None else ""
        return (
            f"{self.display_fps:.1f} fps displayed · {self.swaps_per_second:.2f} swaps/s · "
            f"latency {self.latency_ms:.0f} ms · mode: {self.mode}{age}"
        )


@dataclass
class LiveResult:
    frame: ImageRGB
    stats: LiveStats
    verdict: Any | None  # the detector's verdict when it scored this frame


@dataclass
class LiveSession:
    """One viewer's live state: source, tracker, worker, timings. Lives in `gr.State`, never global."""

    settings: LiveSettings = field(default_factory=LiveSettings)
    source: PreparedSource | None = None
    source_label: str = ""
    generation: int = 0
    tracker: FaceTracker = field(default_factory=FaceTracker)
    worker: SwapWorker | None = None
    worker_engine: SwapEngine | None = None  # the engine whose forward the worker runs
    frame_times: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    direct_swaps: deque[float] = field(default_factory=lambda: deque(maxlen=60))
    frames_seen: int = 0
    last_verdict: Any | None = None

    def __post_init__(self) -> None:
        settings = TrackerSettings(
            detect_every=self.settings.detect_every,
            search_every=self.settings.search_every,
            background=self.settings.background_detection,
        )
        self.tracker = FaceTracker(settings)

    # 1. Source handling ---------------------------------------------------------------------------------
    def set_source(self, source: PreparedSource | None, label: str = "") -> None:
        """Use a new source face; results made for the old one are never shown again."""
        self.source = source
        self.source_label = label
        self.generation += 1
        if self.worker is not None:
            self.worker.forget()

    def stop(self) -> None:
        """The stream stopped or the tab closed: stop the worker, forget the faces."""
        if self.worker is not None:
            self.worker.stop()
        self.tracker.reset()

    # 2. The per-frame path --------------------------------------------------------------------------------
    def process(self, frame: ImageRGB, models: LiveModels, swap: SwapSettings, streaming: bool = True) -> LiveResult:
        """One frame. `streaming=False` (a single image through the API): the faces are detected in this very
        frame before it is swapped, instead of in the background."""
        arrived = time.monotonic()
        self.frames_seen += 1
        output = np.array(frame, copy=True)
        # 2.1 Faces now.
        faces = self.tracker.update(frame, models.detect, background=None if streaming else False)
        faces = faces[:1] if swap.faces == "largest" else faces[: self.settings.max_faces]
        mode = self.mode_for(models.engine)
        message = ""
        swapped: list[Face] = []
        face_age: float | None = None
        # 2.2 Swap, directly or through the worker.
        if self.source is None:
            message = "Choose a source face to start swapping."
        elif not faces:
            message = "No face in view: look at the camera."
        elif mode == "direct":
            for face in faces:
                patch = models.engine.swap(frame, face, self.source, swap)
                if patch is not None:
                    patch.apply(output)
                    swapped.append(face)
            self.direct_swaps.append(time.monotonic())
        else:
            swapped, face_age = self._decoupled(frame, output, faces, models, swap, arrived)
            if not swapped:
                message = "Preparing the swap (the first one takes a moment on a CPU)..."
        # 2.3 Label and watermark what was swapped; score it.
        if swapped and models.post_process is not None:
            output = models.post_process(output, swapped)
        verdict = None
        if models.score is not None and self.frames_seen % self.settings.score_every == 0:
            verdict = models.score(output, faces)
            self.last_verdict = verdict
        done = time.monotonic()
        self.frame_times.append(done)
        self.latencies.append(done - arrived)
        return LiveResult(output, self.stats(mode, len(faces), message, face_age, done), verdict)

    def _decoupled(
        self,
        frame: ImageRGB,
        output: ImageRGB,
        faces: list[Face],
        models: LiveModels,
        swap: SwapSettings,
        arrived: float,
    ) -> tuple[list[Face], float | None]:
        """Submit the newest crops; paste the latest swapped faces with THIS frame's alignment."""
        assert self.source is not None and self.source.latent is not None
        aligned = [norm_crop(frame, face.kps, 128) for face in faces]
        shown = None
        if self.worker is not None and self.worker_engine is not models.engine:
            # Another engine object: e.g. the int8 swapper became ready while this stream ran on fp32. Its
            # last swapped face stays on screen until the new engine's first one.
            shown = self.worker.latest()
            self.worker.stop(wait_s=0.0)
            self.worker = None
        if self.worker is None:
            forward = getattr(models.engine, "forward", None)
            if forward is None:
                raise RuntimeError(f"engine {models.engine.name} cannot run decoupled")
            self.worker = SwapWorker(forward, idle_stop_s=self.settings.idle_stop_s, shown=shown)
            self.worker_engine = models.engine
        crops = tuple(crop for crop, _ in aligned)
        job = SwapJob(crops, self.source.latent, arrived, self.generation, swap.colour_correction)
        self.worker.submit(job)
        latest = self.worker.latest()
        if latest is None or latest.generation != self.generation:
            return [], None
        swapped = []
        for face, (_, to_crop), fake in zip(faces, aligned, latest.faces, strict=False):
            patch = paste_back(
                output,
                fake,
                to_crop,
                colour_correction=False,  # the worker matched the colours to the crop it swapped
                keep_mouth_of=face if swap.mouth_mask else None,
            )
            if patch is not None:
                patch.apply(output)
                swapped.append(face)
        return swapped, (arrived - latest.captured_at) * 1000.0

    # 3. Mode and numbers ----------------------------------------------------------------------------------
    def mode_for(self, engine: SwapEngine) -> Mode:
        """Direct when the engine keeps up with the stream (classic; a fast swapper); else decoupled."""
        if engine.name == "classic" or not hasattr(engine, "forward"):
            return "direct"
        measured = self.worker.median_swap_seconds() if self.worker is not None else None
        if measured is not None and measured < self.settings.direct_budget_s:
            return "direct"
        return "decoupled"

    def stats(self, mode: Mode, faces: int, message: str, face_age: float | None, now: float) -> LiveStats:
        recent = [t for t in self.frame_times if now - t <= 3.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) >= 2 and recent[-1] > recent[0] else 0.0
        if mode == "direct":
            window = [t for t in self.direct_swaps if now - t <= 3.0]
            swap_rate = len(window) / 3.0
        else:
            swap_rate = self.worker.swaps_per_second(now) if self.worker is not None else 0.0
        latency = float(np.median(list(self.latencies))) * 1000.0 if self.latencies else 0.0
        return LiveStats(fps, swap_rate, latency, face_age, mode, faces, message)
