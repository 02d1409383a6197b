"""What the page does, without gradio: shared models plus one function per user action.

`AppServices` is built once at start and shared read-only by every browser session. Everything that
belongs to one viewer (their source face, live session) is passed in by the caller from that viewer's
state. Raises `InputError`/`ModelError` with messages for people; the UI shows them as they are.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import fast_fp32
from pipelines.errors import InputError, ModelError
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.loading import (
    ModelOverrides,
    Precision,
    example_photos,
    fp32_swapper_for,
    gpu_available,
    int8_swapper_for,
    load_face_analyzer,
)
from pipelines.outputs import OutputPolicy, mark_frame, new_output_dir, publish_clip, publish_photo, start_sweeper
from pipelines.provenance import WatermarkPayload
from pipelines.quantize import cached_report
from pipelines.spot import ImageVerdict, Spotter
from pipelines.spot.explain import render_overlay
from pipelines.startup import ModelReport
from pipelines.swap_engines import SourceIdentity, SwapEngine, create_engine
from pipelines.swapping import SwappedFace, create_swap_job, identity_from_photos, swap_clip, swap_image
from pipelines.types import EngineName, ImageRGB, RuntimeSettings, SwapSettings
from pipelines.video import VideoLimits, is_video_path

Progress = Callable[[int, "int | None"], None]


class SwapperPreparation:
    """Prepares a faster swapper in the background at start (CPU only), so the first swaps need not wait.

    On a CPU the int8 version is preferred; where it is not used (fp32 asked for, or int8 failed its check),
    the fp32 swapper's Winograd form. App-wide (not per user): it only ever holds the path of a model file
    to run and a status sentence.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.run_path: Path | None = None
        self.status = "fp32 swapper"
        self.thread: threading.Thread | None = None

    def start(self, swapper: Path, analyzer: FaceAnalyzer, precision: Precision = "auto") -> None:
        if precision == "fp32":
            self._start_fp32(swapper)
            return
        path, reason = int8_swapper_for(swapper, "auto")
        self._set(path, reason)
        if path is not None or gpu_available():
            return  # in use, or not useful on a GPU
        if cached_report(swapper) is not None:
            self._start_fp32(swapper, why_not_int8=reason)  # int8 was already tried on this file and is not used
            return
        self._set(None, "fp32 swapper for now: preparing a faster int8 version in the background (one to two minutes)")

        def work() -> None:
            try:
                self._set(*int8_swapper_for(swapper, "auto", analyzer, build=True))
            except Exception as error:  # keep serving with fp32 whatever happens
                self._set(None, f"fp32 swapper (int8 preparation failed: {error})")
            path, reason = self.current()
            if path is None:
                self._build_fp32(swapper, why_not_int8=reason)

        self._background("int8-swapper", work)

    def _start_fp32(self, swapper: Path, why_not_int8: str = "") -> None:
        """Use the Winograd form of the fp32 swapper when it is ready, else prepare it in the background.

        `why_not_int8`: the reason int8 is not used, kept at the front of the status sentence."""
        path, reason = fp32_swapper_for(swapper)
        self._set_fp32(path, reason, why_not_int8)
        if path is not None or not fast_fp32.enabled() or gpu_available():
            return
        if fast_fp32.cached_winograd_report(swapper) is not None:
            return  # already tried on this file (the reason says why it is not used)
        preparing = "fp32 swapper for now: preparing its faster Winograd form in the background (half a minute)"
        self._set_fp32(None, preparing, why_not_int8)
        self._background("winograd-swapper", lambda: self._build_fp32(swapper, why_not_int8))

    def _build_fp32(self, swapper: Path, why_not_int8: str = "") -> None:
        try:
            path, reason = fp32_swapper_for(swapper, build=True, photos=example_photos())
        except Exception as error:  # keep serving with the plain fp32 file whatever happens
            path, reason = None, f"fp32 swapper (Winograd preparation failed: {error})"
        self._set_fp32(path, reason, why_not_int8)

    def _set_fp32(self, path: Path | None, reason: str, why_not_int8: str) -> None:
        self._set(path, f"{why_not_int8}; {reason}" if why_not_int8 else reason)

    def _background(self, name: str, work: Callable[[], None]) -> None:
        self.thread = threading.Thread(target=work, name=name, daemon=True)
        self.thread.start()

    def _set(self, path: Path | None, status: str) -> None:
        with self._lock:
            changed = path != self.run_path
            self.run_path, self.status = path, status
        if changed:  # the sessions of the file used until now go as soon as no viewer runs them any more
            _engine.cache_clear()

    def current(self) -> tuple[Path | None, str]:
        """The file to run instead of the swapper (None: the swapper itself) and a sentence saying why."""
        with self._lock:
            return self.run_path, self.status


@dataclass(frozen=True, eq=False)
class AppServices:
    """Shared, read-only models and policies (one per process)."""

    report: ModelReport
    overrides: ModelOverrides
    analyzer: FaceAnalyzer | None
    spotter: Spotter | None
    policy: OutputPolicy = field(default_factory=OutputPolicy.from_environment)
    video_limits: VideoLimits = field(default_factory=VideoLimits)
    swapper_prep: SwapperPreparation = field(default_factory=SwapperPreparation)

    @classmethod
    def create(cls, report: ModelReport, overrides: ModelOverrides, precision: Precision = "auto") -> AppServices:
        analyzer = None
        if report.available("detector"):
            loaded = load_face_analyzer(
                overrides, need_recognizer=report.available("recognizer"), want_landmarks=report.available("landmarks")
            )
            analyzer = loaded.analyzer
        services = cls(report, overrides, analyzer, Spotter())
        start_sweeper(services.policy)
        swapper = report.path("swapper")
        if swapper is not None and analyzer is not None:
            services.swapper_prep.start(swapper.path, analyzer, precision)
        return services

    def require_analyzer(self) -> FaceAnalyzer:
        if self.analyzer is None:
            raise ModelError("The face detector is not installed, so faces cannot be found. See the Models tab.")
        return self.analyzer

    def engines(self) -> list[EngineName]:
        """Engines that can run with the installed models."""
        usable: list[EngineName] = []
        if self.report.available("swapper") and self.report.available("recognizer"):
            usable.append("inswapper")
        if self.analyzer is not None:
            usable.append("classic")
        return usable

    def engine(self, name: EngineName, live: bool = False) -> SwapEngine:
        """The shared engine. The live view's inswapper runs on one low-priority thread: it soaks up CPU the
        display path and the browser leave idle, and yields when they need it."""
        if name not in self.engines():
            if name == "inswapper":
                raise ModelError(
                    "The neural swap needs the inswapper_128 and recognizer models, which are not installed "
                    "(see the Models tab). The classic engine works without them."
                )
            raise ModelError("No swap engine can run without the face detector. See the Models tab.")
        swapper = self.report.path("swapper")
        if name != "inswapper" or swapper is None:
            return _engine(name, None, None, 0)
        run_path, _ = self.swapper_prep.current()
        return _engine(name, swapper.path, run_path, 1 if live else 0)


@functools.lru_cache(maxsize=3)  # classic + the live and the clip swapper: plain fp32 ones are dropped later
def _engine(name: EngineName, swapper: Path | None, run_path: Path | None, threads: int) -> SwapEngine:
    # The live engine: ONE thread, run by the low-priority swap worker (measured: two low-priority threads
    # cost the display 2-4 frames/s).
    return create_engine(name, swapper, RuntimeSettings(intra_op_threads=threads), run_path)


# -- Sources ---------------------------------------------------------------------------------------------


def identity_from_image(
    services: AppServices, image: ImageRGB, name: str, face_index: int | None = None
) -> SourceIdentity:
    """The source identity from one photo (in memory; the photo is not kept)."""
    analyzer = services.require_analyzer()
    return identity_from_photos([image], analyzer, names=[name], face_index=face_index)


def identity_from_file(services: AppServices, path: Path, face_index: int | None = None) -> SourceIdentity:
    return identity_from_image(services, load_image(path), path.name, face_index)


# -- Swapping --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhotoOutcome:
    image: ImageRGB  # labelled and watermarked, as downloaded
    file: Path  # signed JPEG
    faces_swapped: int
    payload: WatermarkPayload
    verdict: ImageVerdict | None
    overlay: ImageRGB | None


def swap_photo(services: AppServices, identity: SourceIdentity, target: Path, settings: SwapSettings) -> PhotoOutcome:
    """1. read the target, 2. swap, 3. mark (watermark + label), 4. sign, 5. score with the detector."""
    analyzer = services.require_analyzer()
    image = load_image(target)
    job = create_swap_job(analyzer, services.engine(settings.engine), [identity], settings=settings)
    result = swap_image(image, job)
    if not result.swapped:
        raise InputError(f"No face to swap was found in {target.name}; try a photo where faces are clearly visible.")
    payload = WatermarkPayload.new()
    faces = [s.face for s in result.swapped]
    marked = mark_frame(result.image, faces, payload, services.policy)
    signed = publish_photo(marked, new_output_dir(services.policy), services.policy, parent=target)
    verdict, overlay = score_image(services, marked, faces)
    return PhotoOutcome(marked, signed, len(result.swapped), payload, verdict, overlay)


@dataclass(frozen=True)
class ClipOutcome:
    file: Path
    frames: int
    frames_with_swaps: int
    faces_swapped: int
    duration: float
    audio: str
    payload: WatermarkPayload


def swap_video(
    services: AppServices,
    identity: SourceIdentity,
    target: Path,
    settings: SwapSettings,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ClipOutcome:
    """Swap a clip; every frame with a swapped face is watermarked and labelled; the file is signed."""
    if not is_video_path(target):
        raise InputError(f"{target.name} is not a clip this app can read (use .mp4, .mov, .webm, .mkv or .avi).")
    analyzer = services.require_analyzer()
    job = create_swap_job(analyzer, services.engine(settings.engine), [identity], settings=settings)
    payload = WatermarkPayload.new()
    policy = services.policy

    def post_frame(frame: ImageRGB, swapped: tuple[SwappedFace, ...], index: int) -> ImageRGB:
        return mark_frame(frame, [s.face for s in swapped], payload, policy) if swapped else frame

    folder = new_output_dir(policy)
    encoded = folder / ".swapped-unsigned.mp4"
    result = swap_clip(
        target, encoded, job, post_frame=post_frame, progress=progress, cancel=cancel, limits=services.video_limits
    )
    signed = publish_clip(encoded, folder, policy, parent=target)
    return ClipOutcome(
        signed, result.frames, result.frames_with_swaps, result.faces_swapped, result.duration, result.audio, payload
    )


# -- Spotting ---------------------------------------------------------------------------------------------


def score_image(
    services: AppServices, image: ImageRGB, faces: list[Any] | None = None
) -> tuple[ImageVerdict | None, ImageRGB | None]:
    """The detector's verdict and heatmap overlay for one image (faces detected when not given)."""
    if services.spotter is None:
        return None, None
    found = faces if faces is not None else services.require_analyzer().detect(image)
    if not found:
        return None, None
    verdict = services.spotter.score_image(image, found)
    return verdict, render_overlay(image, verdict)


@dataclass(frozen=True, eq=False)
class CheckOutcome:
    """What the detector panel shows for any uploaded photo or clip."""

    media: str  # "photo" or "clip"
    result: dict[str, Any]  # the same JSON as `python -m pipelines.detect --json`
    overlay: ImageRGB | None  # heatmap over the photo (or the clip's highest-scoring frame)
    timeline: ImageRGB | None  # score over time (clips)


def check_media(services: AppServices, path: Path) -> CheckOutcome:
    """Score any photo or clip with the same code path as `python -m pipelines.detect`."""
    from pipelines.detect import analyse_media

    analyzer = services.require_analyzer()
    if services.spotter is None:
        raise ModelError("The detector could not be loaded.")
    analysis = analyse_media(path, analyzer, services.spotter)
    return CheckOutcome(analysis.result["media"], analysis.result, analysis.overlay, analysis.timeline)
