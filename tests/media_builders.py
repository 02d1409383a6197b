"""Synthesise small test clips with PyAV (no files checked in, no system ffmpeg).

Every frame shows a horizontal gradient with a bright square that moves one step per frame, so frames
differ and encoders do real work, yet clips stay tiny.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

# Video encoder options that keep synthesis fast.
_FAST_VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast", "crf": "23"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"},
    "mpeg4": {"qscale": "4"},
}


@dataclass(frozen=True)
class ClipSpec:
    """What to synthesise."""

    width: int = 160  # coded width in pixels (before any rotation flag)
    height: int = 120  # coded height in pixels
    fps: int = 25  # nominal frame rate
    seconds: float = 1.0  # clip length (frames = round(seconds * fps))
    video_codec: str = "libx264"  # "libx264", "libvpx-vp9" or "mpeg4"
    audio_codec: str | None = "aac"  # "aac", "libopus", "pcm_s16le", "libmp3lame", "libvorbis" or None
    sample_rate: int = 48000  # audio samples per second
    channels: int = 2  # 1 (mono) or 2 (stereo)
    rotation: int = 0  # display-matrix rotation in degrees counter-clockwise (0 = none)
    frame_pts_ms: tuple[int, ...] | None = None  # explicit frame times in ms (variable frame rate), else regular


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 frame `index`: gradient background plus a white square moving to the right."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[:, :, 1] = 64
    frame[:, :, 2] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    side = max(min(width, height) // 8, 2)
    x = (index * 3) % max(width - side, 1)
    frame[height // 4 : height // 4 + side, x : x + side] = 255
    return frame


def make_clip(path: Path, spec: ClipSpec | None = None) -> Path:
    """Write a clip described by `spec` to `path` (the container follows the suffix)."""
    spec = spec or ClipSpec()
    with av.open(str(path), mode="w") as out:
        # 1. Video stream: millisecond time base for explicit (VFR) times, else 1/fps.
        vout = out.add_stream(spec.video_codec, rate=spec.fps, options=_FAST_VIDEO_OPTIONS.get(spec.video_codec, {}))
        assert isinstance(vout, VideoStream)
        vout.width, vout.height = spec.width, spec.height
        # yuv420p needs even sizes; odd-sized test clips use 4:4:4 (x264's High 4:4:4 profile).
        vout.pix_fmt = "yuv420p" if spec.width % 2 == 0 and spec.height % 2 == 0 else "yuv444p"
        if spec.frame_pts_ms is not None:
            vout.codec_context.time_base = Fraction(1, 1000)
        else:
            vout.codec_context.time_base = Fraction(1, spec.fps)
        if spec.rotation:
            vout.set_display_rotation(spec.rotation)
        # 2. Audio stream.
        aout: AudioStream | None = None
        if spec.audio_codec is not None:
            stream = out.add_stream(spec.audio_codec, rate=spec.sample_rate)
            assert isinstance(stream, AudioStream)
            aout = stream
            aout.layout = "mono" if spec.channels == 1 else "stereo"
        # 3. Frames, then flush.
        times = spec.frame_pts_ms if spec.frame_pts_ms is not None else range(round(spec.seconds * spec.fps))
        for index, pts in enumerate(times):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index, spec.width, spec.height), format="rgb24")
            frame.pts = pts
            frame.time_base = vout.codec_context.time_base
            out.mux(vout.encode(frame))
        out.mux(vout.encode())
        if aout is not None:
            _write_tone(out, aout, spec)
    return path


def _write_tone(out: OutputContainer, aout: AudioStream, spec: ClipSpec) -> None:
    """A 440 Hz tone lasting as long as the video, in chunks of 1024 samples."""
    seconds = spec.frame_pts_ms[-1] / 1000 if spec.frame_pts_ms else spec.seconds
    total = round(seconds * spec.sample_rate)
    chunk = 1024
    layout = "mono" if spec.channels == 1 else "stereo"
    for start in range(0, total, chunk):
        count = min(chunk, total - start)
        t = (np.arange(start, start + count) / spec.sample_rate).astype(np.float32)
        tone = (0.2 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        samples = np.repeat(tone[None, :], spec.channels, axis=0)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=layout)
        frame.sample_rate = spec.sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, spec.sample_rate)
        out.mux(aout.encode(frame))
    out.mux(aout.encode())


def h264_round_trip(frames: list[np.ndarray], crf: int = 28, fps: int = 25) -> list[np.ndarray]:
    """Encode RGB frames as H.264 (libx264, default preset) in memory at `crf` and decode them again."""
    import io

    height, width = frames[0].shape[0] // 2 * 2, frames[0].shape[1] // 2 * 2  # yuv420p needs even sides
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        return [np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8) for frame in container.decode(video=0)]
