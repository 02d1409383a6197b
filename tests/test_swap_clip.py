"""`swap_clip`: per-frame swapping through pipelines.video, with the integrator's hook, progress and cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipelines.engine_classic import ClassicEngine
from pipelines.engine_inswapper import InswapperEngine
from pipelines.swapping import SwapJob, SwappedFace, create_swap_job, identity_from_photos, swap_clip
from pipelines.types import ImageRGB, SwapSettings
from pipelines.video import Cancelled, process_video
from tests.model_builders.swapper import build_tiny_inswapper
from tests.test_swap_support import fake_analyzer, read_clip, two_face_scene, write_clip

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

SIDE = 320
"""Clip frames are the 640 px scene at half size: the fake detector scales its faces accordingly."""


def _frames(count: int) -> list[ImageRGB]:
    scene = cv2.resize(two_face_scene(seed=3), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return [np.roll(scene, shift=i, axis=1) for i in range(count)]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, fake_arcface_path: Path) -> SwapJob:
    tmp = tmp_path_factory.mktemp("clip")
    analyzer = fake_analyzer(tmp, fake_arcface_path)
    engine = InswapperEngine.from_path(build_tiny_inswapper(tmp / "tiny.onnx"))
    identity = identity_from_photos([two_face_scene(seed=9)], analyzer)
    return create_swap_job(analyzer, engine, [identity], settings=SwapSettings(faces="all"))


def test_every_frame_is_swapped_and_post_processed(job: SwapJob, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", _frames(5))
    seen: list[tuple[int, int]] = []
    progress: list[tuple[int, int | None]] = []

    def label(frame: ImageRGB, swapped: tuple[SwappedFace, ...], index: int) -> ImageRGB:
        seen.append((index, len(swapped)))
        frame[:8, :8] = (255, 0, 0)  # a visible mark, like the integrator's label
        return frame

    result = swap_clip(src, tmp_path / "out.mp4", job, post_frame=label, progress=lambda d, t: progress.append((d, t)))
    assert result.frames == 5 and result.frames_with_swaps == 5 and result.faces_swapped == 10
    assert seen == [(i, 2) for i in range(5)]
    assert progress[-1][0] == 5
    before, after = read_clip(src), read_clip(tmp_path / "out.mp4")
    assert len(after) == 5
    assert after[0][:8, :8, 0].mean() > 200  # the hook's mark made it into the file
    assert np.abs(before[2].astype(int) - after[2].astype(int)).mean() > 2  # faces changed


def test_frames_without_faces_pass_through(tmp_path: Path) -> None:
    scene_analyzer = fake_analyzer(tmp_path, None)
    identity = identity_from_photos([two_face_scene(seed=9)], scene_analyzer)
    faceless = fake_analyzer(tmp_path, None, faces=(), name="empty")
    job = create_swap_job(faceless, ClassicEngine(), [identity], settings=SwapSettings(engine="classic"))
    src = write_clip(tmp_path / "in.mp4", _frames(3))
    calls: list[int] = []

    def hook(frame: ImageRGB, swapped: tuple[SwappedFace, ...], index: int) -> ImageRGB:
        calls.append(len(swapped))
        return frame

    result = swap_clip(src, tmp_path / "out.mp4", job, post_frame=hook)
    assert result.frames == 3 and result.faces_swapped == 0 and calls == [0, 0, 0]
    # Same as re-encoding the clip untouched (the codec's own loss is the only difference).
    process_video(src, tmp_path / "plain.mp4", lambda frame, index: frame)
    plain, after = read_clip(tmp_path / "plain.mp4"), read_clip(tmp_path / "out.mp4")
    assert max(np.abs(p.astype(int) - a.astype(int)).mean() for p, a in zip(plain, after, strict=True)) < 0.5


def test_cancel_stops_and_leaves_nothing(job: SwapJob, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", _frames(6))
    cancel = threading.Event()

    def stop_after_two(done: int, total: int | None) -> None:
        if done == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        swap_clip(src, tmp_path / "out.mp4", job, progress=stop_after_two, cancel=cancel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_faces_are_tracked_between_detections(job: SwapJob, tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", _frames(7))
    calls: list[int] = []
    detect = job.analyzer.detect

    def counting_detect(image: ImageRGB, max_faces: int | None = None) -> list:
        calls.append(1)
        return detect(image, max_faces)

    object.__setattr__(job.analyzer, "detect", counting_detect)
    try:
        result = swap_clip(src, tmp_path / "out.mp4", job, detect_every=3)
    finally:
        object.__delattr__(job.analyzer, "detect")
    assert result.frames == 7 and result.frames_with_swaps == 7 and result.faces_swapped == 14
    assert len(calls) == 3  # frames 0, 3 and 6


def test_worker_threads_give_the_same_clip_as_one_thread(job: SwapJob, tmp_path: Path) -> None:
    """The GPU path (frames swapped in worker threads) writes exactly what the one-thread path writes."""
    src = write_clip(tmp_path / "in.mp4", _frames(9))
    indices: list[int] = []

    def label(frame: ImageRGB, swapped: tuple[SwappedFace, ...], index: int) -> ImageRGB:
        indices.append(index)
        return frame

    one = swap_clip(src, tmp_path / "one.mp4", job, workers=0)
    many = swap_clip(src, tmp_path / "many.mp4", job, workers=3, post_frame=label)

    assert (many.frames, many.frames_with_swaps, many.faces_swapped) == (one.frames, one.frames_with_swaps, 18)
    assert sorted(indices) == list(range(9))
    for a, b in zip(read_clip(tmp_path / "one.mp4"), read_clip(tmp_path / "many.mp4"), strict=True):
        assert np.array_equal(a, b)
