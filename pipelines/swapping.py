"""Face swapping for photos and clips: who is swapped in, which target faces change, and the per-frame loop.

Typical use (the command line and the app do exactly this):

    identity = identity_from_photos([photo], analyzer)            # once per source person
    job = create_swap_job(analyzer, engine, [identity], settings=SwapSettings(faces="largest"))
    result = swap_image(target_photo, job)                         # result.image, result.swapped
    clip = swap_clip("in.mp4", "out.mp4", job, post_frame=label, progress=..., cancel=event)

A `SwapJob` is immutable and belongs to one request: it holds the shared read-only models plus that
user's prepared sources and references. Nothing here keeps module-level per-user state.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.errors import InputError
from pipelines.face_align import norm_crop
from pipelines.face_analysis import FaceAnalyzer, cosine_similarity
from pipelines.live_tracker import FaceTracker, TrackerSettings
from pipelines.swap_engines import ALIGNED_SIZE, PreparedSource, SourceIdentity, SwapEngine
from pipelines.types import Embedding, Face, ImageRGB, SwapSettings
from pipelines.video import Cancelled, VideoLimits, process_video

DETECT_EVERY = 3
"""Clips: the detector runs on every third frame; keypoints are tracked in between."""

MAX_CLIP_FACES = 32
"""At most this many faces are followed per clip frame."""

GPU_CLIP_WORKERS = 3
"""Clips on a GPU: frames swapped at once, so one frame's paste-back, label and watermark (CPU) overlap the
next frame's swap network (GPU). On a CPU the network already uses every core: one frame at a time."""

PostFrame = Callable[[ImageRGB, "tuple[SwappedFace, ...]", int], ImageRGB]
"""(swapped frame, the faces swapped in it, frame index) -> frame: the integrator's labelling hook."""

Progress = Callable[[int, "int | None"], None]
"""(frames done, total frames or None when unknown)."""

NO_FACE_IN_SOURCE = "No face found in the source photo {name} - try a frontal, well-lit photo of one face."


# ---------------------------------------------------------------------------------------------------------
# Sources and references
# ---------------------------------------------------------------------------------------------------------


def _normalise(vector: np.ndarray) -> Embedding:
    vector = np.asarray(vector, np.float32).reshape(-1)
    return np.asarray(vector / max(float(np.linalg.norm(vector)), 1e-12), np.float32)


def pick_face(faces: Sequence[Face], name: str, index: int | None, role: str = "source") -> Face:
    """The face a photo contributes: the largest (faces come largest first) or the user's choice."""
    if not faces:
        if role == "source":
            raise InputError(NO_FACE_IN_SOURCE.format(name=name))
        raise InputError(f"No face found in the {role} photo {name} - try a frontal, well-lit photo.")
    chosen = 0 if index is None else index
    if not 0 <= chosen < len(faces):
        raise InputError(
            f"The {role} photo {name} shows {len(faces)} face(s); face number {chosen + 1} does not exist "
            f"(choose 1 to {len(faces)}, counted from the largest)."
        )
    return faces[chosen]


def identity_from_photos(
    photos: Sequence[ImageRGB],
    analyzer: FaceAnalyzer,
    *,
    face_index: int | None = None,
    names: Sequence[str] | None = None,
) -> SourceIdentity:
    """One person from one or more photos.

    1. Detect the faces of each photo (largest first) and take the largest, or number `face_index`.
    2. With a recognizer: average the photos' normalised embeddings and renormalise (a steadier identity
       than any single photo). 3. Keep the first photo's face aligned at 256 px (classic engine).
    """
    if not photos:
        raise InputError("Give at least one source photo.")
    labels = list(names) if names is not None else [f"#{i + 1}" for i in range(len(photos))]
    embeddings: list[Embedding] = []
    aligned: ImageRGB | None = None
    for photo, name in zip(photos, labels, strict=True):
        # 1. The face this photo contributes.
        face = pick_face(analyzer.detect(photo), name, face_index)
        # 2. Its embedding, when a recognizer is loaded.
        if analyzer.recognizer is not None:
            face = analyzer.embed(photo, face)
            if face.embedding is not None:
                embeddings.append(_normalise(face.embedding))
        # 3. The aligned crop from the first photo.
        if aligned is None:
            aligned = norm_crop(photo, face.kps, ALIGNED_SIZE)[0]
    assert aligned is not None  # photos is not empty
    embedding = _normalise(np.mean(embeddings, axis=0)) if embeddings else None
    return SourceIdentity(embedding=embedding, aligned=np.ascontiguousarray(aligned), photos=len(photos))


def reference_embedding(photo: ImageRGB, analyzer: FaceAnalyzer, name: str = "reference") -> Embedding:
    """The identity of the largest face in a reference photo (needs a recognizer)."""
    if analyzer.recognizer is None:
        raise InputError("Picking faces by reference photo needs a face recognizer model.")
    face = analyzer.embed(photo, pick_face(analyzer.detect(photo), name, None, role="reference"))
    assert face.embedding is not None
    return _normalise(face.embedding)


# ---------------------------------------------------------------------------------------------------------
# The job and face selection
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SwapJob:
    """Everything one swap request needs; immutable, so one job may serve many frames and threads."""

    analyzer: FaceAnalyzer  # shared, read-only models
    engine: SwapEngine  # shared, read-only engine
    sources: tuple[PreparedSource, ...]  # one per person swapped in
    references: tuple[Embedding, ...] = ()  # faces == "reference": who each source replaces (parallel)
    settings: SwapSettings = field(default_factory=SwapSettings)


@dataclass(frozen=True)
class SwappedFace:
    """One target face that was replaced (the integrator's hook labels these)."""

    face: Face  # the target face as detected (box, 5 keypoints)
    source_index: int  # which source replaced it
    similarity: float | None  # cosine similarity to its reference (faces == "reference" only)


def create_swap_job(
    analyzer: FaceAnalyzer,
    engine: SwapEngine,
    identities: Sequence[SourceIdentity],
    references: Sequence[Embedding] = (),
    settings: SwapSettings | None = None,
) -> SwapJob:
    """Check the combination and prepare every source once.

    Mapping rules: with `faces="reference"`, either one source replaces every face matching any
    reference, or there are as many sources as references and source i replaces the person of reference i
    (many-to-many). Otherwise exactly one source is used.
    """
    settings = settings or SwapSettings()
    if not identities:
        raise InputError("Give at least one source photo.")
    if settings.faces == "reference":
        if not references:
            raise InputError("Choosing faces by reference needs at least one reference photo.")
        if len(identities) not in (1, len(references)):
            raise InputError(
                f"{len(identities)} sources and {len(references)} reference photos: give one source, or one "
                "source per reference (source 1 replaces the person in reference 1, and so on)."
            )
    elif len(identities) != 1:
        raise InputError("Several source people need --faces reference with one reference photo per source.")
    if not 0.0 < settings.reference_threshold <= 1.0:
        raise InputError("The reference similarity threshold must be between 0 and 1.")
    prepared = tuple(engine.prepare_source(identity) for identity in identities)
    refs = tuple(_normalise(r) for r in references) if settings.faces == "reference" else ()
    return SwapJob(analyzer, engine, prepared, refs, settings)


def select_targets(faces: Sequence[Face], job: SwapJob) -> list[SwappedFace]:
    """The faces to replace and by which source. `faces` come largest first.

    `reference`: each face goes to its most similar reference if the cosine similarity reaches
    `settings.reference_threshold` (default 0.35). Why 0.35: with buffalo_l's w600k_r50 embeddings,
    photos of the same person usually score well above 0.5 and different people mostly below 0.2; the
    verification thresholds used with ArcFace models sit around 0.3-0.4. 0.35 keeps the same person across
    pose and lighting changes while rejecting strangers. (Not calibrated here: ../shared holds no real
    recognizer; a workshop can lower it for hard clips or raise it for look-alikes.)
    """
    selection = job.settings.faces
    if selection == "all":
        return [SwappedFace(face, 0, None) for face in faces]
    if selection == "largest":
        return [SwappedFace(faces[0], 0, None)] if faces else []
    chosen: list[SwappedFace] = []
    for face in faces:
        if face.embedding is None:
            continue
        scores = [cosine_similarity(face.embedding, ref) for ref in job.references]
        best = int(np.argmax(scores))
        if scores[best] >= job.settings.reference_threshold:
            chosen.append(SwappedFace(face, best if len(job.sources) > 1 else 0, scores[best]))
    return chosen


def detect_candidates(image: ImageRGB, job: SwapJob) -> list[Face]:
    """The faces a job may swap: detected, and embedded only when selection needs identities."""
    settings, analyzer = job.settings, job.analyzer
    faces = analyzer.detect(image, max_faces=1 if settings.faces == "largest" else None)
    if settings.faces == "reference":
        faces = [analyzer.embed(image, face) for face in faces]
    return faces


def find_targets(image: ImageRGB, job: SwapJob, faces: Sequence[Face] | None = None) -> list[SwappedFace]:
    """Detect (and, only when needed, embed or landmark) the target faces, then select them.

    `faces`: already known faces of this image (followed by a tracker), so detection is skipped.
    """
    settings, analyzer = job.settings, job.analyzer
    found = detect_candidates(image, job) if faces is None else list(faces)
    targets = select_targets(found, job)
    if settings.mouth_mask and analyzer.landmarker is not None:
        targets = [
            SwappedFace(
                t.face.with_landmarks(analyzer.landmarker.landmarks(image, t.face.box)), t.source_index, t.similarity
            )
            for t in targets
        ]
    return targets


# ---------------------------------------------------------------------------------------------------------
# Photos and clips
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SwapResult:
    """A swapped photo (or frame) and what was swapped in it."""

    image: ImageRGB
    swapped: tuple[SwappedFace, ...]
    faces_found: int


def swap_image(
    image: ImageRGB,
    job: SwapJob,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    faces: Sequence[Face] | None = None,
) -> SwapResult:
    """Swap the selected faces of one RGB image. The input is never modified (when nothing is swapped the
    result holds the input array itself).

    1. Find and select the target faces. 2. Copy the image once. 3. For each face, the engine renders the
    face's region (seeing faces already swapped) and the patch is written in. `progress(faces done, faces)`
    is called after each face; a set `cancel` event raises `pipelines.video.Cancelled` between faces.
    """
    # 1. Targets (`faces`, when given, are this image's faces as followed by a tracker).
    targets = find_targets(image, job, faces)
    if not targets:
        return SwapResult(image, (), 0)
    # 2. One copy for all faces.
    out = image.copy()
    done: list[SwappedFace] = []
    # 3. Face by face.
    for number, target in enumerate(targets, start=1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("Stopped: the swap was cancelled.")
        patch = job.engine.swap(out, target.face, job.sources[target.source_index], job.settings)
        if patch is not None:
            patch.apply(out)
            done.append(target)
        if progress is not None:
            progress(number, len(targets))
    return SwapResult(out, tuple(done), len(targets))


@dataclass(frozen=True)
class ClipSwapResult:
    """What `swap_clip` wrote."""

    output: Path
    frames: int  # frames written
    frames_with_swaps: int  # frames in which at least one face was swapped
    faces_swapped: int  # face swaps over all frames
    duration: float  # seconds of video
    audio: str  # "copied", "reencoded" or "none"


def swap_clip(
    src: Path | str,
    dst: Path | str,
    job: SwapJob,
    *,
    post_frame: PostFrame | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    limits: VideoLimits | None = None,
    detect_every: int = DETECT_EVERY,
    workers: int | None = None,
) -> ClipSwapResult:
    """Swap every frame of a clip; frames without faces pass through.

    Faces are detected on every `detect_every`-th frame and followed by their keypoints (optical flow) in
    between, re-detected at once when tracking is lost (`detect_every=1` detects every frame).
    `post_frame(frame, swapped_faces, index)` sees every output frame (labels, watermarks). `cancel` stops
    the work between frames (raises `pipelines.video.Cancelled`); nothing is left at `dst` on any failure.
    `workers`: frames swapped at once (default: `GPU_CLIP_WORKERS` on a GPU, else 0 = in this thread).
    """
    counts = {"frames_with_swaps": 0, "faces": 0}  # local to this call
    counts_lock = threading.Lock()
    tracker = FaceTracker(TrackerSettings(detect_every=max(1, detect_every), max_faces=MAX_CLIP_FACES))
    workers = clip_workers(job.engine) if workers is None else workers

    def swap_frame(frame: ImageRGB, faces: list[Face], index: int) -> ImageRGB:
        result = swap_image(frame, job, faces=faces)
        if result.swapped:
            with counts_lock:
                counts["frames_with_swaps"] += 1
                counts["faces"] += len(result.swapped)
        image = result.image
        if post_frame is not None:
            image = post_frame(image, result.swapped, index)
        return image

    with _frame_pool(workers) as pool:

        def frame_fn(frame: ImageRGB, index: int) -> ImageRGB | Future[ImageRGB]:
            # 1. Faces, in frame order (the tracker follows them from frame to frame) ...
            faces = tracker.update(frame, lambda image: detect_candidates(image, job))
            # 2. ... then the swap, here or in a worker (`process_video` keeps the frame order).
            if pool is None:
                return swap_frame(frame, faces, index)
            return pool.submit(swap_frame, frame, faces, index)

        written = process_video(src, dst, frame_fn, limits=limits, progress=progress, cancel=cancel)
    return ClipSwapResult(
        output=written.output,
        frames=written.frames,
        frames_with_swaps=counts["frames_with_swaps"],
        faces_swapped=counts["faces"],
        duration=written.duration,
        audio=written.audio,
    )


def clip_workers(engine: SwapEngine) -> int:
    """Worker threads for a clip: several on a GPU (CPU and GPU work overlap), none on a CPU."""
    return GPU_CLIP_WORKERS if getattr(engine, "device", "cpu") == "cuda" else 0


@contextlib.contextmanager
def _frame_pool(workers: int) -> Iterator[ThreadPoolExecutor | None]:
    if workers <= 0:
        yield None
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clip-frame") as pool:
        yield pool
