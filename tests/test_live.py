"""The live path without a browser: tracking, the decoupled worker, per-viewer isolation, stopping."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.engine_inswapper import InswapperEngine
from pipelines.face_analysis import FaceAnalyzer
from pipelines.live import LiveModels, LiveSession, LiveSettings
from pipelines.live_tracker import FaceTracker, TrackerSettings
from pipelines.live_worker import SwapJob, SwapWorker
from pipelines.swap_engines import PreparedSource, SourceIdentity
from pipelines.types import Face, SwapSettings
from tests.model_builders.detector import build_fake_scrfd, face_at
from tests.model_builders.swapper import build_tiny_inswapper

FACE = face_at(320, 240, 180)


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> FaceAnalyzer:
    path = build_fake_scrfd(tmp_path_factory.mktemp("live") / "det.onnx", [FACE])
    return FaceAnalyzer.from_paths(path)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> InswapperEngine:
    return InswapperEngine.from_path(build_tiny_inswapper(tmp_path_factory.mktemp("live") / "swap.onnx"))


class SlowEngine:
    """The tiny inswapper, slowed down to what a real swap costs on a CPU."""

    name = "inswapper"
    needs_recognizer = True

    def __init__(self, inner: InswapperEngine, delay_s: float) -> None:
        self.inner, self.delay_s, self.calls = inner, delay_s, 0

    def prepare_source(self, identity: SourceIdentity) -> PreparedSource:
        return self.inner.prepare_source(identity)

    def forward(self, crop: np.ndarray, latent: np.ndarray, run_options: object = None) -> np.ndarray:
        self.calls += 1
        time.sleep(self.delay_s)
        return self.inner.forward(crop, latent)

    def swap(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a slow engine must never be called on the display path")


def source_for(engine: InswapperEngine, seed: int) -> PreparedSource:
    embedding = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    return engine.prepare_source(SourceIdentity(embedding, np.zeros((256, 256, 3), np.uint8), 1))


def textured_frame(shift: tuple[float, float] = (0.0, 0.0), seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), (7, 7), 2)
    matrix = np.float32([[1, 0, shift[0] - 80], [0, 1, shift[1] - 60]])
    return np.ascontiguousarray(cv2.warpAffine(base, matrix, (640, 480)))


def face_region(frame: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in FACE[0])
    return frame[y1:y2, x1:x2].astype(np.int16)


def test_tracker_follows_keypoints_between_detections() -> None:
    calls = []
    start_face = Face(FACE[0], FACE[1], 0.9)

    def detect(frame: np.ndarray) -> list[Face]:
        calls.append(1)
        return [start_face]

    tracker = FaceTracker(TrackerSettings(detect_every=4))
    tracker.update(textured_frame(), detect)
    faces = tracker.update(textured_frame((6.0, -4.0)), detect)
    assert len(calls) == 1
    np.testing.assert_allclose(faces[0].kps - start_face.kps, np.tile([6.0, -4.0], (5, 1)), atol=1.0)
    tracker.update(textured_frame((9.0, -5.0)), detect)
    tracker.update(textured_frame((12.0, -6.0)), detect)
    assert len(calls) == 1
    tracker.update(textured_frame((14.0, -7.0)), detect)
    assert len(calls) == 2  # frames 0, 4, 8, ... are detected


def test_worker_keeps_only_the_newest_job_and_stops_quickly() -> None:
    seen: list[int] = []

    def forward(crop: np.ndarray, latent: np.ndarray, run_options: object) -> np.ndarray:
        seen.append(int(crop[0, 0, 0]))
        time.sleep(0.2)
        return crop

    worker = SwapWorker(forward, idle_stop_s=5.0)
    latent = np.zeros((1, 512), np.float32)
    for value in range(5):
        worker.submit(SwapJob((np.full((128, 128, 3), value, np.uint8),), latent, time.monotonic(), 0))
        time.sleep(0.01)
    deadline = time.monotonic() + 3
    while (worker.latest() is None or int(worker.latest().faces[0][0, 0, 0]) != 4) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert seen[-1] == 4 and len(seen) <= 3  # the backlog was skipped, the newest face swapped
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 2.0 and not worker.running()


def test_worker_stops_by_itself_when_frames_stop() -> None:
    worker = SwapWorker(lambda crop, latent, run_options: crop, idle_stop_s=0.3)
    worker.submit(SwapJob((np.zeros((128, 128, 3), np.uint8),), np.zeros((1, 512), np.float32), 0.0, 0))
    time.sleep(1.0)
    assert not worker.running()
    assert threading.active_count() < 50


def test_decoupled_mode_never_waits_and_follows_the_face(detector: FaceAnalyzer, engine: InswapperEngine) -> None:
    slow = SlowEngine(engine, delay_s=0.4)
    models = LiveModels(detect=detector.detect, engine=slow)
    session = LiveSession(LiveSettings(idle_stop_s=1.0))
    session.set_source(source_for(engine, 1), "one")
    frame = textured_frame()
    first = session.process(frame, models, SwapSettings())
    assert first.stats.mode == "decoupled"
    assert np.array_equal(first.frame, frame)  # nothing swapped yet, and we did not wait for it
    durations, swapped_frames = [], 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        started = time.monotonic()
        result = session.process(frame, models, SwapSettings())
        durations.append(time.monotonic() - started)
        swapped_frames += int(not np.array_equal(result.frame, frame))
        time.sleep(0.03)
    assert max(durations) < 0.2  # the display path never waits for the 0.4 s swap
    assert swapped_frames > 10
    assert 0 < result.stats.swaps_per_second <= 1 / 0.4 + 0.5
    assert result.stats.face_age_ms is not None and result.stats.face_age_ms > 0
    assert np.abs(face_region(result.frame) - face_region(frame)).mean() > 2
    session.stop()
    assert not session.worker.running()


def test_two_viewers_never_see_each_other(detector: FaceAnalyzer, engine: InswapperEngine) -> None:
    models = LiveModels(detect=detector.detect, engine=engine)
    frame = textured_frame()
    viewers = [LiveSession(), LiveSession()]
    viewers[0].set_source(source_for(engine, 10), "ten")
    viewers[1].set_source(source_for(engine, 20), "twenty")

    def expected(source: PreparedSource) -> np.ndarray:
        patch = engine.swap(frame, Face(FACE[0], FACE[1], 0.9), source, SwapSettings())
        assert patch is not None
        out = frame.copy()
        patch.apply(out)
        return out

    own = [expected(v.source) for v in viewers if v.source is not None]
    results: dict[int, list[np.ndarray]] = {0: [], 1: []}

    def run(index: int) -> None:
        deadline = time.monotonic() + 10
        while len(results[index]) < 8 and time.monotonic() < deadline:
            out = viewers[index].process(frame, models, SwapSettings()).frame
            if not np.array_equal(out, frame):
                results[index].append(out)
            time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not np.array_equal(own[0], own[1])
    for index in (0, 1):
        assert len(results[index]) == 8
        for out in results[index]:
            assert np.array_equal(out, own[index])  # exactly its own source, never the other viewer's
    # The tiny swapper keeps up, so both switched to swapping every frame directly.
    assert all(v.mode_for(engine) == "direct" for v in viewers)
    for viewer in viewers:
        viewer.stop()


def test_no_source_and_no_face_are_said_plainly(engine: InswapperEngine, tmp_path: Path) -> None:
    empty = FaceAnalyzer.from_paths(build_fake_scrfd(tmp_path / "none.onnx", []))
    session = LiveSession()
    models = LiveModels(detect=empty.detect, engine=engine)
    assert "Choose a source" in session.process(textured_frame(), models, SwapSettings()).stats.message
    session.set_source(source_for(engine, 2))
    assert "No face in view" in session.process(textured_frame(), models, SwapSettings()).stats.message


# ---------------------------------------------------------------------------------------------------------
# A slow swap is cut short when the stream stops (onnxruntime's RunOptions.terminate)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_forward(tmp_path_factory: pytest.TempPathFactory) -> object:
    """A swap forward through a real onnxruntime session that takes many seconds on one thread (the tiny
    swapper with 500 busy convolutions, about 0.6 TFLOP): the tests below fail if it ever finishes before it
    is cut short."""
    import onnxruntime as ort

    from pipelines.types import RuntimeSettings

    path = build_tiny_inswapper(tmp_path_factory.mktemp("slow") / "slow.onnx", busy_convs=500)
    engine = InswapperEngine.from_path(path, RuntimeSettings(intra_op_threads=1))
    finished: list[float] = []

    def forward(crop: np.ndarray, latent: np.ndarray, run_options: ort.RunOptions) -> np.ndarray:
        swapped = engine.forward(crop, latent, run_options)
        finished.append(time.monotonic())
        return swapped

    forward.finished = finished  # type: ignore[attr-defined]
    return forward


def _job() -> SwapJob:
    return SwapJob((np.zeros((128, 128, 3), np.uint8),), np.zeros((1, 512), np.float32), time.monotonic(), 0)


def test_stop_cuts_a_running_swap_short(slow_forward: object) -> None:
    worker = SwapWorker(slow_forward, idle_stop_s=30.0)  # type: ignore[arg-type]
    worker.submit(_job())
    time.sleep(0.3)  # the forward is running now
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 1.0 and not worker.running()
    assert slow_forward.finished == [] and worker.latest() is None  # type: ignore[attr-defined]


def test_frames_stopping_ends_the_worker_within_two_seconds_even_mid_swap(slow_forward: object) -> None:
    idle = LiveSettings().idle_stop_s
    worker = SwapWorker(slow_forward, idle_stop_s=idle)  # type: ignore[arg-type]
    worker.submit(_job())  # the last frame of a stream; then nothing more arrives
    last_frame = time.monotonic()
    while worker.running() and time.monotonic() - last_frame < 5.0:
        time.sleep(0.02)
    assert not worker.running()
    assert time.monotonic() - last_frame < 2.0
    assert slow_forward.finished == []  # type: ignore[attr-defined]  # the swap was cut short, not finished


@pytest.mark.parametrize("search_every", [1, 3])
def test_with_no_face_in_view_the_tracker_searches_every_few_frames(search_every: int) -> None:
    calls = []

    def detect(frame: np.ndarray) -> list[Face]:
        calls.append(1)
        return []

    tracker = FaceTracker(TrackerSettings(detect_every=12, search_every=search_every))
    for step in range(9):
        assert tracker.update(textured_frame((float(step), 0.0)), detect) == []
    # Clips look for faces on every frame (none is missed); the live view on every 3rd (CPU for the display),
    # and both much sooner than the every-12th-frame re-detection of a followed face.
    assert len(calls) == (9 if search_every == 1 else 3)


def test_swap_rate_comes_from_the_spacing_of_swaps() -> None:
    worker = SwapWorker(lambda crop, latent, run_options: crop)
    assert worker.swaps_per_second(now=100.0) == 0.0
    worker.finished_at.extend([100.0, 103.5, 107.0, 110.5])  # one swap every 3.5 s
    assert worker.swaps_per_second(now=111.0) == pytest.approx(1 / 3.5)
    assert worker.swaps_per_second(now=200.0) == 0.0  # nothing finished lately


class SlowDetector:
    """Finds FACE, moved as the frame was moved, after `delay_s`; counts the calls."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s, self.calls = delay_s, 0
        self.shifts: dict[int, float] = {}  # id(frame) -> its horizontal shift

    def frame(self, shift: float) -> np.ndarray:
        frame = textured_frame((shift, 0.0))
        self.shifts[id(frame)] = shift
        return frame

    def __call__(self, frame: np.ndarray) -> list[Face]:
        self.calls += 1
        time.sleep(self.delay_s)
        dx = self.shifts[id(frame)]
        box = (FACE[0][0] + dx, FACE[0][1], FACE[0][2] + dx, FACE[0][3])
        return [Face(box, FACE[1] + np.float32([dx, 0.0]), 0.9)]


def test_background_detection_never_makes_a_frame_wait() -> None:
    detect = SlowDetector(0.3)
    tracker = FaceTracker(TrackerSettings(detect_every=4, search_every=1, background=True))
    durations, found_at, frames = [], None, []
    for step in range(40):
        frames.append(detect.frame(step * 0.5))  # kept alive: the detector recognises frames by id
        started = time.monotonic()
        faces = tracker.update(frames[-1], detect)
        durations.append(time.monotonic() - started)
        if faces and found_at is None:
            found_at = step
        time.sleep(0.03)
    assert max(durations) < 0.1  # never the 0.3 s of a detection
    assert found_at is not None and found_at >= 3  # the first frames go on without a face meanwhile
    # The detected face was carried from the frame the detector saw to the current one (it moved 0.5 px a frame).
    np.testing.assert_allclose(faces[0].kps - FACE[1], np.tile([39 * 0.5, 0.0], (5, 1)), atol=1.0)
    assert 2 <= detect.calls <= 40 * 0.03 / 0.3 + 2  # one detection at a time, never a backlog


def test_background_detection_results_are_dropped_after_a_reset_and_errors_reach_the_caller() -> None:
    detect = SlowDetector(0.2)
    tracker = FaceTracker(TrackerSettings(detect_every=4, background=True))
    frame = detect.frame(0.0)
    tracker.update(frame, detect)
    assert tracker.pending is not None
    tracker.reset()  # the stream stopped: the running detection's faces must not come back
    time.sleep(0.3)
    assert tracker.update(frame, detect) == []

    def broken(frame: np.ndarray) -> list[Face]:
        raise ValueError("the detector broke")

    tracker = FaceTracker(TrackerSettings(background=True))
    tracker.update(textured_frame(), broken)
    assert tracker.pending is not None and tracker.pending.wait(2.0)
    with pytest.raises(ValueError, match="the detector broke"):
        tracker.update(textured_frame(), broken)


def test_the_worker_matches_colours_once_per_swap() -> None:
    grey_face = np.full((128, 128, 3), 128, np.uint8)
    grey_face[40:90, 40:90] = 100  # some structure, so there is a standard deviation to move
    warm_target = np.zeros((128, 128, 3), np.uint8)
    warm_target[..., 0], warm_target[..., 1], warm_target[..., 2] = 200, 120, 90

    def forward(crop: np.ndarray, latent: np.ndarray, run_options: object) -> np.ndarray:
        return grey_face.copy()

    results = {}
    for colour in (False, True):
        worker = SwapWorker(forward, idle_stop_s=5.0)
        worker.submit(SwapJob((warm_target,), np.zeros((1, 512), np.float32), time.monotonic(), 0, colour))
        deadline = time.monotonic() + 3
        while worker.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        latest = worker.latest()
        assert latest is not None
        results[colour] = latest.faces[0]
        worker.stop()
    assert np.array_equal(results[False], grey_face)
    means = results[True][20:108, 20:108].reshape(-1, 3).mean(axis=0)
    assert means[0] > means[1] > means[2]  # the swapped face took on the target's warm colours


def test_a_single_image_through_the_api_has_its_faces_found_at_once(
    detector: FaceAnalyzer, engine: InswapperEngine
) -> None:
    models = LiveModels(detect=detector.detect, engine=engine)
    frame = textured_frame()
    streamed, sent_alone = LiveSession(), LiveSession()
    for session in (streamed, sent_alone):
        session.set_source(source_for(engine, 4), "four")
    # A stream's first frame goes out while its faces are still being looked for; an API call waits for them.
    first = streamed.process(frame, models, SwapSettings())
    assert first.stats.faces == 0 and "No face" in first.stats.message
    assert sent_alone.process(frame, models, SwapSettings(), streaming=False).stats.faces == 1
    for session in (streamed, sent_alone):
        session.stop()


def test_a_detection_made_before_the_camera_changed_size_is_not_used() -> None:
    detect = SlowDetector(0.1)
    tracker = FaceTracker(TrackerSettings(detect_every=4, background=True))
    tracker.update(detect.frame(0.0), detect)
    time.sleep(0.2)
    small = np.ascontiguousarray(cv2.resize(textured_frame(), (320, 240)))
    assert tracker.update(small, detect) == []  # its boxes belong to the 640x480 frame
    assert tracker.pending is not None  # and a new detection on the new size has started


def test_a_stream_moves_to_a_new_engine_without_a_blank_frame(detector: FaceAnalyzer, engine: InswapperEngine) -> None:
    """The int8 swapper becoming ready mid-stream: the next frames use it, and the last face swapped with
    the old engine stays on screen until the new one has swapped."""
    old, new = SlowEngine(engine, delay_s=0.05), SlowEngine(engine, delay_s=0.3)
    session = LiveSession(LiveSettings(idle_stop_s=1.0))
    session.set_source(source_for(engine, 1), "one")
    frame = textured_frame()
    deadline = time.monotonic() + 3
    while old.calls < 2 and time.monotonic() < deadline:
        session.process(frame, LiveModels(detect=detector.detect, engine=old), SwapSettings())
        time.sleep(0.03)
    assert old.calls >= 2
    first_worker = session.worker
    result = session.process(frame, LiveModels(detect=detector.detect, engine=new), SwapSettings())
    assert session.worker is not first_worker and session.worker_engine is new
    assert not np.array_equal(result.frame, frame)  # still the old engine's face, not a blank frame
    calls_before = old.calls
    deadline = time.monotonic() + 3
    while new.calls < 1 and time.monotonic() < deadline:
        session.process(frame, LiveModels(detect=detector.detect, engine=new), SwapSettings())
        time.sleep(0.03)
    assert new.calls >= 1 and old.calls <= calls_before + 1  # at most the swap already running finished
    time.sleep(0.3)
    assert not first_worker.running()
    session.stop()
