"""Video processing: timing, audio handling, rotation, odd sizes, progress, cancellation, limits, bad input.

Every clip is synthesised here with PyAV (see tests/media_builders.py) and kept short and small.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

import pipelines.video as video
from pipelines.errors import InputError
from pipelines.video import (
    Cancelled,
    VideoLimits,
    is_video_path,
    probe_video,
    process_video,
    rotate_upright,
)
from tests.media_builders import ClipSpec, make_clip, synthetic_frame


def identity(image: np.ndarray, index: int) -> np.ndarray:
    return image


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def video_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


def leftovers(folder: Path) -> list[str]:
    """Temporary files process_video may have left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".partial-"))


@pytest.fixture(scope="module")
def clip_3s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s, 640x480, 25 fps, H.264 + AAC stereo."""
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", ClipSpec(width=640, height=480, seconds=3.0))


@pytest.fixture(scope="module")
def clip_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s, 160x120, 25 fps, H.264 + AAC."""
    return make_clip(tmp_path_factory.mktemp("clips") / "small.mp4")


# ---------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------


def test_identity_keeps_frames_duration_and_audio_bytes(clip_3s: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    result = process_video(clip_3s, dst, identity)

    assert result.output == dst and dst.is_file()
    assert result.frames == 75 and result.audio == "copied"
    assert len(decode_rgb(dst)) == 75
    assert abs(video_duration(dst) - video_duration(clip_3s)) <= 1 / 25
    assert abs(result.duration - 3.0) <= 1 / 25
    assert audio_packets(dst) == audio_packets(clip_3s)  # copied byte for byte
    info = probe_video(dst)
    assert (info.width, info.height, info.video_codec, info.rotation) == (640, 480, "h264", 0)
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    head = dst.read_bytes()
    assert head.index(b"moov") < head.index(b"mdat")  # +faststart: the index comes first
    assert leftovers(tmp_path) == []


def test_marker_drawn_by_frame_fn_is_in_the_output(clip_small: Path, tmp_path: Path) -> None:
    seen: list[int] = []

    def draw_marker(image: np.ndarray, index: int) -> np.ndarray:
        seen.append(index)
        out = image.copy()
        out[8:40, 8:40] = (255, 0, 0)
        return out

    result = process_video(clip_small, tmp_path / "out.mp4", draw_marker)

    assert seen == list(range(25)) and result.frames == 25
    frames = decode_rgb(result.output)
    assert len(frames) == 25
    for frame in frames:
        patch = frame[12:36, 12:36].astype(int)
        assert np.abs(patch - (255, 0, 0)).max() < 40  # lossy, but clearly red
        assert frame[60:, 60:].astype(int).std() > 10  # the rest is still the source picture


def test_variable_frame_rate_keeps_each_frame_time(tmp_path: Path) -> None:
    times_ms = (0, 40, 80, 200, 240, 500, 540, 1000)
    src = make_clip(tmp_path / "vfr.mp4", ClipSpec(frame_pts_ms=times_ms))

    result = process_video(src, tmp_path / "out.mp4", identity)

    assert frame_times(result.output) == pytest.approx([t / 1000 for t in times_ms], abs=1e-3)
    assert video_duration(result.output) == pytest.approx(video_duration(src), abs=1e-3)


# ---------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------


def test_avi_with_pcm_audio_is_reencoded_to_aac_mono(tmp_path: Path) -> None:
    spec = ClipSpec(video_codec="mpeg4", audio_codec="pcm_s16le", channels=1, sample_rate=44100)
    src = make_clip(tmp_path / "clip.avi", spec)

    result = process_video(src, tmp_path / "out.mp4", identity)

    assert result.audio == "reencoded" and result.frames == 25
    with av.open(str(result.output)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.channels == 1
        assert audio.codec_context.sample_rate == 44100
        assert audio.duration is not None and audio.time_base is not None
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=0.05)


def test_clip_without_audio(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "silent.mp4", ClipSpec(audio_codec=None))
    assert probe_video(src).has_audio is False

    result = process_video(src, tmp_path / "out.mp4", identity)

    assert result.audio == "none" and result.frames == 25
    with av.open(str(result.output)) as container:
        assert len(container.streams.audio) == 0


def test_webm_vp9_opus_copies_opus(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.webm", ClipSpec(video_codec="libvpx-vp9", audio_codec="libopus"))
    info = probe_video(src)
    assert (info.video_codec, info.audio_codec, info.frames) == ("vp9", "opus", None)
    calls: list[tuple[int, int | None]] = []

    def record(done: int, total: int | None) -> None:
        calls.append((done, total))

    result = process_video(src, tmp_path / "out.mp4", identity, progress=record)

    assert result.audio == "copied" and result.frames == 25
    assert audio_packets(result.output) == audio_packets(src)
    assert calls[-1] == (25, 25)  # no frame count in WebM: the total is estimated from duration x fps


def test_mp3_in_mkv_is_copied(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "clip.mkv", ClipSpec(audio_codec="libmp3lame"))
    assert probe_video(src).audio_codec == "mp3"  # the format's name, not the decoder's ("mp3float")

    result = process_video(src, tmp_path / "out.mp4", identity)

    assert result.audio == "copied"
    assert audio_packets(result.output) == audio_packets(src)


# ---------------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_flag_gives_upright_frames_and_an_unflagged_output(tmp_path: Path, rotation: int) -> None:
    src = make_clip(tmp_path / "phone.mp4", ClipSpec(width=160, height=96, rotation=rotation, audio_codec=None))
    info = probe_video(src)
    assert (info.width, info.height, info.rotation) == (96, 160, rotation)
    received: list[np.ndarray] = []

    def keep(image: np.ndarray, index: int) -> np.ndarray:
        received.append(image.copy())
        return image

    result = process_video(src, tmp_path / "out.mp4", keep)

    expected = rotate_upright(synthetic_frame(0, 160, 96), rotation)
    assert received[0].shape == (160, 96, 3) and received[0].flags.c_contiguous
    assert np.abs(received[0].astype(int) - expected).mean() < 6
    out_info = probe_video(result.output)
    assert (out_info.width, out_info.height, out_info.rotation) == (96, 160, 0)
    assert np.abs(decode_rgb(result.output)[0].astype(int) - expected).mean() < 8


def test_rotate_upright_turns_counter_clockwise() -> None:
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, axis=2)  # [[0 1 2], [3 4 5]]
    assert rotate_upright(image, 0) is image
    assert rotate_upright(image, 90)[:, :, 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert rotate_upright(image, 180)[:, :, 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert rotate_upright(image, 270)[:, :, 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert video._normalise_rotation(-90) == 270 and video._normalise_rotation(180.4) == 180


def test_odd_size_is_cropped_by_one_pixel(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "odd.mp4", ClipSpec(width=321, height=241, audio_codec=None, seconds=0.4))
    shapes: set[tuple[int, ...]] = set()

    def record(image: np.ndarray, index: int) -> np.ndarray:
        shapes.add(image.shape)
        return image

    result = process_video(src, tmp_path / "out.mp4", record)

    assert shapes == {(241, 321, 3)}  # frame_fn sees the whole picture
    info = probe_video(result.output)
    assert (info.width, info.height) == (320, 240) and result.frames == 10


# ---------------------------------------------------------------------------------------------------------
# Progress, cancellation, frame_fn contract
# ---------------------------------------------------------------------------------------------------------


def test_progress_reports_every_frame(clip_small: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    process_video(clip_small, tmp_path / "out.mp4", identity, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, 25) for done in range(1, 26)]


@pytest.mark.parametrize("after", [0, 5])
def test_cancel_raises_and_leaves_no_file(clip_small: Path, tmp_path: Path, after: int) -> None:
    cancel = threading.Event()
    if after == 0:
        cancel.set()

    def stop_later(image: np.ndarray, index: int) -> np.ndarray:
        if index + 1 == after:
            cancel.set()
        return image

    dst = tmp_path / "out.mp4"
    with pytest.raises(Cancelled):
        process_video(clip_small, dst, stop_later, cancel=cancel)
    assert not dst.exists() and leftovers(tmp_path) == []


def test_frame_fn_returning_a_wrong_shape_is_a_programming_error(clip_small: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    with pytest.raises(ValueError, match="frame_fn must return"):
        process_video(clip_small, dst, lambda image, index: image[:10])
    assert not dst.exists() and leftovers(tmp_path) == []


def test_existing_destination_is_replaced(clip_small: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    process_video(clip_small, dst, identity)
    assert probe_video(dst).frames == 25


# ---------------------------------------------------------------------------------------------------------
# Limits and bad input
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (VideoLimits(max_seconds=1.0), "This clip is 3 seconds long; clips up to 1 second can be swapped"),
        (VideoLimits(max_side=320), "640x480 pixels; videos up to 320 pixels"),
        (VideoLimits(max_frames=50), "75 frames; clips up to 50 frames"),
        (VideoLimits(max_bytes=1000), "videos up to 0 MB"),
    ],
)
def test_limits_refuse_before_decoding(clip_3s: Path, tmp_path: Path, limits: VideoLimits, message: str) -> None:
    called: list[int] = []

    def never(image: np.ndarray, index: int) -> np.ndarray:
        called.append(index)
        return image

    dst = tmp_path / "out.mp4"
    start = time.perf_counter()
    with pytest.raises(InputError, match=message):
        process_video(clip_3s, dst, never, limits=limits)
    assert time.perf_counter() - start < 1.0
    assert called == [] and not dst.exists() and leftovers(tmp_path) == []


def test_duration_message_uses_minutes() -> None:
    assert video._describe_seconds(12 * 60 + 0.2, round) == "12 minutes"
    assert video._describe_seconds(300, round) == "5 minutes"
    assert video._describe_seconds(61, round) == "1 minute 1 second"


def test_running_frame_guard_catches_lying_metadata(
    clip_small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(video, "_check_limits", lambda *args: None)  # pretend the metadata said nothing
    dst = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="more than 10 frames"):
        process_video(clip_small, dst, identity, limits=VideoLimits(max_frames=10))
    assert not dst.exists() and leftovers(tmp_path) == []


def _audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "does not exist"),
        ("empty", "is empty"),
        ("text", "could not be opened as a video"),
        ("audio_only", "has no video picture"),
        ("truncated_mp4", "could not be opened as a video"),
    ],
)
def test_bad_input_raises_input_error_and_writes_nothing(
    clip_small: Path, tmp_path: Path, case: str, message: str
) -> None:
    src = tmp_path / ("sound.m4a" if case == "audio_only" else "input.mp4")
    if case == "empty":
        src.write_bytes(b"")
    elif case == "text":
        src.write_text("these are my holiday notes, not a video\n" * 20)
    elif case == "audio_only":
        _audio_only(src)
    elif case == "truncated_mp4":  # upload cut short: the MP4 index (at the end) is missing
        src.write_bytes(clip_small.read_bytes()[: clip_small.stat().st_size // 2])
    dst = tmp_path / "out" / "result.mp4"
    with pytest.raises(InputError, match=message):
        process_video(src, dst, identity)
    assert not dst.exists()
    assert not dst.parent.exists() or leftovers(dst.parent) == []


def test_corrupt_data_mid_stream_stops_with_a_message(clip_small: Path, tmp_path: Path) -> None:
    data = bytearray(clip_small.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    src = tmp_path / "damaged.mp4"
    src.write_bytes(bytes(data))
    dst = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="is damaged: reading stopped after"):
        process_video(src, dst, identity)
    assert not dst.exists() and leftovers(tmp_path) == []


def test_is_video_path() -> None:
    assert is_video_path("clip.MP4") and is_video_path(Path("a/b.webm")) and is_video_path("x.avi")
    assert not is_video_path("photo.jpg") and not is_video_path("mp4")


# ---------------------------------------------------------------------------------------------------------
# frame_fn handing back futures (frames worked on in threads, e.g. on a GPU)
# ---------------------------------------------------------------------------------------------------------


def test_future_frames_finishing_out_of_order_are_encoded_in_order(clip_small: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def paint(image: np.ndarray, index: int) -> np.ndarray:
        time.sleep(0.03 if index % 3 == 0 else 0.0)  # every third frame finishes after the next ones
        out = image.copy()
        out[:, :] = (index * 10, 255 - index * 10, 128)
        return out

    done: list[int] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        result = process_video(
            clip_small,
            tmp_path / "out.mp4",
            lambda image, index: pool.submit(paint, image, index),
            progress=lambda count, total: done.append(count),
        )

    assert result.frames == 25 and done == list(range(1, 26))
    frames = decode_rgb(result.output)
    reds = [int(round(float(np.median(frame[:, :, 0])) / 10)) for frame in frames]
    assert reds == list(range(25))  # every frame in its place
    assert abs(result.duration - 1.0) <= 1 / 25


def test_a_failing_future_frame_stops_the_clip_and_leaves_no_worker(clip_small: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    started: list[int] = []
    finished: list[int] = []

    def work(image: np.ndarray, index: int) -> np.ndarray:
        started.append(index)
        if index == 6:
            raise RuntimeError("frame 6 broke")
        time.sleep(0.02)
        finished.append(index)
        return image

    dst = tmp_path / "out.mp4"
    with ThreadPoolExecutor(max_workers=2) as pool:
        with pytest.raises(RuntimeError, match="frame 6 broke"):
            process_video(clip_small, dst, lambda image, index: pool.submit(work, image, index))
        # When process_video returns, nothing handed to the pool is still running.
        running = sorted(set(started) - set(finished) - {6})
        assert running == []
    assert max(started) <= 6 + video.MAX_FRAMES_IN_FLIGHT  # it stopped taking frames soon after
    assert not dst.exists() and leftovers(tmp_path) == []
