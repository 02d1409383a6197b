"""Video in, video out: run a per-frame function over a clip and write a browser-friendly H.264 MP4.

What `process_video` guarantees:
- Limits (duration, size, frame count, file size) are checked from the container before any frame is
  decoded, and a running frame/time guard catches files whose metadata lies.
- `frame_fn` receives upright RGB uint8 frames (phone rotation metadata applied) and the output carries
  no rotation flag. Odd widths/heights are cropped by one pixel (the last column/row) after `frame_fn`,
  because yuv420p needs even sizes.
- Source frame timestamps are kept, so variable frame rate clips stay in sync; the output has the same
  number of frames as the input.
- Audio is copied byte for byte when browsers play it in MP4 (AAC, MP3, Opus), else re-encoded to AAC.
- Damage that FFmpeg reports (unreadable MP4 data, undecodable packets) raises `InputError` and keeps
  nothing. Damage it skips silently (MKV/WebM resynchronise; a truncated MKV/WebM simply ends early) gives a
  finished, shorter clip: compare `VideoResult.frames`/`duration` with `probe_video` to notice it.
- The output is written to a temporary file next to `dst` and renamed only on success.
- H.264 is encoded without B-frames, so variable frame rate timing survives the MP4 muxer exactly.
- `frame_fn` may hand back a `concurrent.futures.Future` instead of a frame (a caller that runs the heavy
  part of each frame in worker threads, e.g. on a GPU): up to `MAX_FRAMES_IN_FLIGHT` frames are then in
  progress at once and are still encoded in order. On any failure the frames still in flight are
  cancelled or waited for before the error is raised, so no worker outlives the call.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import av
import av.error
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange, Colorspace
from av.video.stream import VideoStream

from pipelines.errors import InputError, SwapSpotError, check_input_file
from pipelines.types import ImageRGB

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")

_BROWSER_AUDIO_CODECS = frozenset({"aac", "mp3", "opus"})
"""Audio codecs that play in an MP4 in every mainstream browser: copied unchanged."""

_AAC_SAMPLE_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})
"""Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz."""

FrameFn = Callable[[ImageRGB, int], "ImageRGB | Future[ImageRGB]"]
"""(upright RGB frame, frame index) -> RGB frame of the same size, or a Future of one."""

MAX_FRAMES_IN_FLIGHT = 4
"""With a `frame_fn` that returns futures: frames decoded and handed over but not yet encoded."""

ProgressFn = Callable[[int, "int | None"], None]
"""(frames done, total frames or None when unknown)."""


class Cancelled(SwapSpotError):  # noqa: N818 - the public name other modules code against
    """The caller asked to stop (its `threading.Event` was set); nothing was written."""


@dataclass(frozen=True)
class VideoLimits:
    """What an uploaded clip may be, checked from the container before decoding."""

    max_seconds: float = 300.0  # refuse clips longer than this many seconds
    max_side: int = 3840  # refuse clips wider or taller than this many pixels (4K)
    max_bytes: int = 1_000_000_000  # refuse files larger than this many bytes
    max_frames: int = 18_000  # refuse clips with more frames than this (5 minutes at 60 fps)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip (plus the rotation read from its first frame)."""

    width: int  # displayed width in pixels, after rotation
    height: int  # displayed height in pixels, after rotation
    fps: float  # average frame rate (0.0 when the container does not say)
    frames: int | None  # frame count from the container, None when it does not say (WebM, MKV)
    duration: float  # seconds (0.0 when unknown)
    rotation: int  # degrees counter-clockwise to turn a decoded frame to show it upright (0, 90, 180, 270)
    video_codec: str  # e.g. "h264", "vp9"
    audio_codec: str | None  # e.g. "aac", "opus", "pcm_s16le"; None without audio
    has_audio: bool  # True when the clip has a sound track


@dataclass(frozen=True)
class VideoResult:
    """What `process_video` wrote."""

    output: Path  # the finished MP4
    frames: int  # video frames written
    duration: float  # seconds, from the last frame's end time minus the first frame's start time
    audio: Literal["copied", "reencoded", "none"]  # what happened to the sound track


def is_video_path(path: Path | str) -> bool:
    """True when the file name ends with a video suffix this app accepts (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# ---------------------------------------------------------------------------------------------------------
# Probing and limits
# ---------------------------------------------------------------------------------------------------------


def probe_video(path: Path | str, limits: VideoLimits | None = None) -> VideoInfo:
    """Read a clip's metadata and refuse it (InputError) if it breaks `limits`; decodes one frame at most."""
    limits = limits or VideoLimits()
    path = Path(path)
    _check_file(path, limits)
    with _open_input(path) as container:
        return _read_info(container, path.name, limits)


def _check_file(path: Path, limits: VideoLimits) -> None:
    name = path.name
    size = check_input_file(path)
    if size > limits.max_bytes:
        raise InputError(
            f"The file {name} is {_describe_bytes(size)}; videos up to {_describe_bytes(limits.max_bytes)} "
            "can be swapped."
        )


def _open_input(path: Path) -> InputContainer:
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise InputError(
            f"{path.name} could not be opened as a video: it may be damaged, cut short, or not a video at all "
            f"({type(error).__name__})."
        ) from error


def _video_stream(container: InputContainer, name: str) -> VideoStream:
    """The first real video stream (cover art in music files does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise InputError(f"{name} has no video picture (it may be a sound-only file).")


def _audio_stream(container: InputContainer) -> AudioStream | None:
    return container.streams.audio[0] if container.streams.audio else None


def _read_info(container: InputContainer, name: str, limits: VideoLimits) -> VideoInfo:
    """1. metadata -> 2. limits -> 3. rotation from the first decoded frame."""
    # 1. Metadata: nothing decoded yet.
    stream = _video_stream(container, name)
    width, height = stream.codec_context.width, stream.codec_context.height
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = stream.frames or None
    # 2. Limits, before any decoding.
    _check_limits(width, height, duration, frames or round(duration * fps), limits, name)
    # 3. Rotation lives in the display matrix, which PyAV exposes on decoded frames only.
    rotation = _first_frame_rotation(container, stream, name)
    if rotation in (90, 270):
        width, height = height, width
    audio = _audio_stream(container)
    audio_codec = _codec_name(audio) if audio is not None else None
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        duration=duration,
        rotation=rotation,
        video_codec=_codec_name(stream),
        audio_codec=audio_codec,
        has_audio=audio is not None,
    )


def _codec_name(stream: VideoStream | AudioStream) -> str:
    """The format's name for the codec ("mp3"), not the decoder's ("mp3float")."""
    return stream.codec_context.codec.canonical_name


def _check_limits(width: int, height: int, duration: float, frames: int, limits: VideoLimits, name: str) -> None:
    if width < 1 or height < 1:
        raise InputError(f"{name} has no picture size; the file looks damaged.")
    if max(width, height) > limits.max_side:
        raise InputError(
            f"This clip is {width}x{height} pixels; videos up to {limits.max_side} pixels on the longest side "
            "can be swapped. Export a smaller version and try again."
        )
    if duration > limits.max_seconds:
        raise InputError(
            f"This clip is {_describe_seconds(duration, math.ceil)} long; clips up to "
            f"{_describe_seconds(limits.max_seconds, math.floor)} can be swapped. Trim it and try again."
        )
    if frames > limits.max_frames:
        raise InputError(
            f"This clip has {frames:,} frames; clips up to {limits.max_frames:,} frames can be swapped. "
            "Trim it or lower its frame rate and try again."
        )


def _first_frame_rotation(container: InputContainer, stream: VideoStream, name: str) -> int:
    """Degrees counter-clockwise (0, 90, 180 or 270) to show the clip upright."""
    try:
        for frame in container.decode(stream):
            return _normalise_rotation(frame.rotation)
    except av.error.FFmpegError as error:
        raise InputError(f"{name} could not be read: the video looks damaged ({type(error).__name__}).") from error
    raise InputError(f"{name} contains no video frames that could be decoded.")


def _normalise_rotation(degrees: float) -> int:
    """Any display-matrix angle -> the nearest of 0, 90, 180, 270 (counter-clockwise)."""
    return (round(degrees / 90.0) * 90) % 360


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded frame counter-clockwise by `rotation` degrees (a multiple of 90); a view, not a copy."""
    turns = (rotation // 90) % 4
    return np.rot90(image, k=turns) if turns else image


def _describe_seconds(seconds: float, rounding: Callable[[float], int]) -> str:
    total = max(int(rounding(seconds)), 0)
    if total < 60:
        return f"{total} second{'s' if total != 1 else ''}"
    minutes, rest = divmod(total, 60)
    text = f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{text} {rest} second{'s' if rest != 1 else ''}" if rest else text


def _describe_bytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


# ---------------------------------------------------------------------------------------------------------
# Processing
# ---------------------------------------------------------------------------------------------------------


def process_video(
    src: Path | str,
    dst: Path | str,
    frame_fn: FrameFn,
    *,
    limits: VideoLimits | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    crf: int = 18,
    preset: str = "veryfast",
) -> VideoResult:
    """Apply `frame_fn` to every frame of `src` and write an H.264/yuv420p MP4 to `dst` atomically.

    Raises InputError (unreadable, damaged or too large input), Cancelled (`cancel` was set), or whatever
    `frame_fn` raises; in every case nothing is left at `dst` or next to it.
    """
    src, dst = Path(src), Path(dst)
    # 1. Refuse what breaks the limits before decoding anything.
    info = probe_video(src, limits)
    # 2. Write to a temporary file next to dst so the final rename is atomic.
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".mp4", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # 3. Transcode, then 4. publish.
        job = _Transcode(src, tmp, info, limits or VideoLimits(), frame_fn, progress, cancel)
        frames, duration, audio = job.run(crf=crf, preset=preset)
        tmp.chmod(0o644)  # mkstemp makes 0600 files; the output is an ordinary file
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return VideoResult(output=dst, frames=frames, duration=duration, audio=audio)


@dataclass(frozen=True)
class _InFlight:
    """A frame handed to `frame_fn`, with the source timing its output is encoded with."""

    result: object  # the frame, or a Future of it
    shape: tuple[int, ...]
    pts: int
    time_base: Fraction | None
    duration: int
    time: float


class _Transcode:
    """The state of one `process_video` call (never shared between calls)."""

    def __init__(
        self,
        src: Path,
        tmp: Path,
        info: VideoInfo,
        limits: VideoLimits,
        frame_fn: FrameFn,
        progress: ProgressFn | None,
        cancel: threading.Event | None,
    ) -> None:
        self.src, self.tmp, self.info, self.limits = src, tmp, info, limits
        self.frame_fn, self.progress, self.cancel = frame_fn, progress, cancel
        estimate = round(info.duration * info.fps) if info.duration and info.fps else 0
        self.total: int | None = info.frames or estimate or None
        self.done = 0
        self.first_time: float | None = None
        self.end_time = 0.0
        self.last_pts: int | None = None
        self.durations: dict[int, int] = {}  # pts -> source frame duration, for frames still inside the encoder
        self.in_flight: deque[_InFlight] = deque()  # frames handed to frame_fn as futures, oldest first

    def run(self, crf: int, preset: str) -> tuple[int, float, Literal["copied", "reencoded", "none"]]:
        """1. open both files -> 2. add output streams -> 3. demux, process, mux -> 4. flush encoders."""
        try:
            return self._run(crf, preset)
        finally:
            self._abandon_in_flight()

    def _run(self, crf: int, preset: str) -> tuple[int, float, Literal["copied", "reencoded", "none"]]:
        # 1. Open both files.
        with (
            _open_input(self.src) as inp,
            av.open(str(self.tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"}) as out,
        ):
            # 2. Output streams (all must exist before the first packet is written).
            vin = _video_stream(inp, self.src.name)
            vin.thread_type = "AUTO"
            ain = _audio_stream(inp)
            audio = _audio_mode(ain)
            vout = self._add_video_output(out, vin, crf, preset)
            aout = _add_audio_output(out, ain, audio)
            # 3. Packets in file order; the muxer interleaves audio with the (delayed) encoded video.
            for packet in self._demux(inp, [vin] if ain is None else [vin, ain]):
                if packet.stream is vin:
                    for frame in self._decode(packet):
                        self._encode_frame(out, vout, frame)  # type: ignore[arg-type]
                elif aout is not None and audio == "copied":
                    if packet.dts is not None:  # skip the empty flush packet
                        packet.stream = aout
                        out.mux(packet)
                elif aout is not None:
                    for audio_frame in self._decode(packet):
                        out.mux(aout.encode(audio_frame))  # type: ignore[arg-type]
            while self.in_flight:
                self._finish_oldest(out, vout)
            if self.done == 0:
                raise InputError(f"{self.src.name} contains no video frames that could be decoded.")
            # 4. Flush the encoders.
            self._mux_video(out, vout.encode())
            if aout is not None and audio == "reencoded":
                out.mux(aout.encode())
        return self.done, self.end_time - (self.first_time or 0.0), audio

    def _demux(self, inp: InputContainer, streams: list[VideoStream | AudioStream]) -> Iterator[av.Packet]:
        """`inp.demux`, with read errors turned into a message (only reading is wrapped, not our encoding)."""
        packets = inp.demux(streams)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as error:
                raise self._damaged(error) from error
            yield packet

    def _decode(self, packet: av.Packet) -> list[av.frame.Frame]:
        try:
            return packet.decode()  # type: ignore[return-value]
        except av.error.FFmpegError as error:
            raise self._damaged(error) from error

    def _damaged(self, error: Exception) -> InputError:
        return InputError(
            f"{self.src.name} is damaged: reading stopped after {self.done} frames ({type(error).__name__})."
        )

    def _add_video_output(self, out: OutputContainer, vin: VideoStream, crf: int, preset: str) -> VideoStream:
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        # No B-frames: with them the MP4 muxer ends a variable-frame-rate track at the last *decode* time, which
        # can cut the final frames; without them decode order is display order and every frame keeps its time.
        options = {"crf": str(crf), "preset": preset, "bf": "0"}
        vout = out.add_stream("libx264", rate=rate, options=options)
        vout.width = self.info.width - self.info.width % 2
        vout.height = self.info.height - self.info.height % 2
        vout.pix_fmt = "yuv420p"
        vout.codec_context.time_base = vin.time_base or Fraction(1, 90_000)  # the source's, so pts carry over
        vout.codec_context.colorspace = Colorspace.ITU601  # what swscale converts RGB with
        vout.codec_context.color_range = ColorRange.MPEG
        vout.thread_type = "AUTO"  # frame threads; thread_count 0 lets x264 pick (1.5 x cores)
        vout.thread_count = 0
        return vout

    def _encode_frame(self, out: OutputContainer, vout: VideoStream, frame: VideoFrame) -> None:
        """1. guards -> 2. upright RGB -> 3. frame_fn -> 4. even size -> 5. encode with the source timing."""
        # 1. Cancellation and the running limits (metadata can lie).
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("Stopped: the video was cancelled before it was finished.")
        if self.done + len(self.in_flight) >= self.limits.max_frames:
            raise InputError(
                f"This clip has more than {self.limits.max_frames:,} frames; trim it or lower its frame rate."
            )
        pts = self._next_pts(frame)
        time = float(pts * frame.time_base) if frame.time_base else 0.0
        if self.first_time is None:
            self.first_time = time
        if time - self.first_time > self.limits.max_seconds:
            raise InputError(
                f"This clip is longer than {_describe_seconds(self.limits.max_seconds, math.floor)}; trim it."
            )
        # 2. Upright RGB (a copy only when the clip is rotated).
        image = cast(ImageRGB, frame.to_ndarray(format="rgb24"))
        if self.info.rotation:
            image = np.ascontiguousarray(rotate_upright(image, self.info.rotation))
        # 3. The caller's work: a frame now, or a future one (then encoded once it is the oldest).
        index = self.done + len(self.in_flight)
        result = self.frame_fn(image, index)
        timing = _InFlight(result, image.shape, pts, frame.time_base, frame.duration or 0, time)
        if isinstance(result, Future):
            self.in_flight.append(timing)
            while len(self.in_flight) > MAX_FRAMES_IN_FLIGHT:
                self._finish_oldest(out, vout)
            return
        self._write(out, vout, result, timing)

    def _finish_oldest(self, out: OutputContainer, vout: VideoStream) -> None:
        timing = self.in_flight.popleft()
        assert isinstance(timing.result, Future)
        self._write(out, vout, timing.result.result(), timing)

    def _abandon_in_flight(self) -> None:
        """After a failure: cancel the frames not started and wait for those being worked on."""
        pending = [timing.result for timing in self.in_flight if isinstance(timing.result, Future)]
        self.in_flight.clear()
        for future in pending:
            future.cancel()
        wait_futures(pending)

    def _write(self, out: OutputContainer, vout: VideoStream, result: object, timing: _InFlight) -> None:
        """4. even size -> 5. encode with the source timing."""
        _check_frame_result(result, timing.shape)
        assert isinstance(result, np.ndarray)
        # 4. yuv420p needs even sizes: drop the last column/row of odd sizes (a view, no copy).
        height, width = result.shape[:2]
        result = result[: height - height % 2, : width - width % 2]
        if result.strides[1:] != (3, 1):
            result = np.ascontiguousarray(result)
        # 5. Encode with the source frame's timestamp, kept strictly increasing.
        new_frame = VideoFrame.from_numpy_buffer(result, format="rgb24")
        new_frame.time_base = timing.time_base
        new_frame.pts = timing.pts
        self.durations[timing.pts] = timing.duration
        self._mux_video(out, vout.encode(new_frame))
        self._advance(timing)

    def _mux_video(self, out: OutputContainer, packets: list[av.Packet]) -> None:
        """libx264 hands back packets without durations; the MP4 muxer then guesses the last frame's length
        (from the audio, say). Give each packet its source frame's duration, looked up by timestamp."""
        for packet in packets:
            duration = self.durations.pop(packet.pts, 0) if packet.pts is not None else 0
            if duration and not packet.duration:
                packet.duration = duration
        out.mux(packets)

    def _next_pts(self, frame: VideoFrame) -> int:
        """The source timestamp, or one step past the previous one when it is missing or out of order."""
        pts = frame.pts
        if pts is None or (self.last_pts is not None and pts <= self.last_pts):
            pts = (self.last_pts if self.last_pts is not None else -1) + max(frame.duration or 0, 1)
        self.last_pts = pts
        return pts

    def _advance(self, timing: _InFlight) -> None:
        """Count the frame, extend the covered time span and report progress."""
        time = timing.time
        step = float(timing.duration * timing.time_base) if timing.duration and timing.time_base else 0.0
        if not step and self.info.fps:
            step = 1.0 / self.info.fps
        self.end_time = max(self.end_time, time + step)
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _check_frame_result(result: object, shape: tuple[int, ...]) -> None:
    """frame_fn must hand back an RGB uint8 array of the frame's size (a programming error otherwise)."""
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != shape:
        got = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
        raise ValueError(f"frame_fn must return a uint8 array of shape {shape}, got {got}")


def _audio_mode(ain: AudioStream | None) -> Literal["copied", "reencoded", "none"]:
    """Copy what browsers play in MP4; AAC without extradata (ADTS, e.g. from AVI/TS) is re-encoded too."""
    if ain is None:
        return "none"
    name = _codec_name(ain)
    if name in _BROWSER_AUDIO_CODECS and (name != "aac" or ain.codec_context.extradata):
        return "copied"
    return "reencoded"


def _add_audio_output(
    out: OutputContainer, ain: AudioStream | None, mode: Literal["copied", "reencoded", "none"]
) -> AudioStream | None:
    if ain is None or mode == "none":
        return None
    if mode == "copied":
        return out.add_stream_from_template(ain)
    source_rate = ain.codec_context.sample_rate or 48000
    rate = source_rate if source_rate in _AAC_SAMPLE_RATES else 48000
    aout = out.add_stream("aac", rate=rate)
    # The source layout name (e.g. "1 channels" from PCM) makes the AAC encoder fail: name it plainly.
    aout.layout = "mono" if ain.codec_context.channels == 1 else "stereo"
    return aout
