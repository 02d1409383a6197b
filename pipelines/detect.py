"""Is this photo or clip a face swap? `python -m pipelines.detect MEDIA [--json] [--detector PATH]`.

Exit codes: 0 done, 2 unusable input (message on stderr), 1 internal failure.
With --json, one JSON object: `score` (0..1), `faces` (box, score, signals, contributions, explanations)
and, for clips, `frames`, `timeline` and `top_frames`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines import loading
from pipelines.errors import InputError, ModelError, SwapSpotError
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import IMAGE_SUFFIXES, load_image
from pipelines.provenance import read_provenance, read_watermark
from pipelines.spot import THRESHOLD, ImageVerdict, SpotHistory, Spotter
from pipelines.spot.explain import render_overlay
from pipelines.spot.video import render_timeline
from pipelines.types import Face, ImageRGB

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".mpg", ".mpeg")
DETECTOR_ENV = "SWAPSPOT_DETECTOR"
WATERMARK_FRAMES = 12  # clips: the watermark is looked for in at most this many sampled frames with faces


def detector_path(override: str | Path | None) -> Path:
    """Where the face detector is: --detector, else $SWAPSPOT_DETECTOR, else the verified registry detector."""
    return loading.detector_path(override)


def detect_photo(path: Path, analyzer: FaceAnalyzer, spotter: Spotter) -> dict[str, Any]:
    """Score every face of a photo; the photo's score is the highest face score."""
    return analyse_media(path, analyzer, spotter).result


def detect_clip(
    path: Path, analyzer: FaceAnalyzer, spotter: Spotter, sample_fps: float = 2.0, max_frames: int = 60
) -> dict[str, Any]:
    """Score sampled frames of a clip; the clip's score is the peak of the smoothed timeline."""
    return analyse_clip(path, analyzer, spotter, sample_fps, max_frames).result


@dataclass(frozen=True, eq=False)
class MediaAnalysis:
    """The JSON result plus what the panel draws: the heatmap overlay and, for clips, the score timeline."""

    result: dict[str, Any]
    overlay: ImageRGB | None
    timeline: ImageRGB | None = None


def analyse_media(path: Path, analyzer: FaceAnalyzer, spotter: Spotter) -> MediaAnalysis:
    """Photo or clip, by suffix (the panel's and the CLI's single code path)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return analyse_clip(path, analyzer, spotter)
    image = load_image(path)
    faces = analyzer.detect(image)
    if not faces:
        raise InputError(f"No face found in {path.name}; try a photo where a face is clearly visible.")
    verdict = spotter.score_image(image, faces)
    result = {"media": "photo", **verdict.to_json(), **provenance_json(path, [(image, faces)])}
    return MediaAnalysis(result, render_overlay(image, verdict))


def provenance_json(path: Path, samples: list[tuple[ImageRGB, list[Face]]]) -> dict[str, Any]:
    """`watermark` (this app's invisible mark, looked for in the given frames' faces) and `provenance` (C2PA)."""
    reading = None
    looked = 0
    for image, faces in samples:
        if not faces:
            continue
        looked += 1
        reading = read_watermark(image, faces)
        if reading.found:
            break
    report = read_provenance(path)
    found = bool(reading is not None and reading.found)
    return {
        "watermark": {
            "found": found,
            "payload": reading.payload.describe() if found and reading and reading.payload else None,
            "output_id": f"{reading.payload.output_id:08x}" if found and reading and reading.payload else None,
            "frames_checked": looked,
        },
        "provenance": {
            "state": report.state,
            "explanation": report.explanation,
            "actions": report.actions,
            "source_type": report.source_type,
            "signer": report.signer,
        },
    }


def analyse_clip(
    path: Path, analyzer: FaceAnalyzer, spotter: Spotter, sample_fps: float = 2.0, max_frames: int = 60
) -> MediaAnalysis:
    """Score sampled frames of a clip; the clip's score is the peak of the smoothed timeline."""
    import av

    history = SpotHistory()
    samples: list[tuple[ImageRGB, list[Face]]] = []  # first frames with faces, for the watermark
    best: tuple[float, ImageRGB, ImageVerdict] | None = None
    frames: list[dict[str, Any]] = []
    verdicts: dict[int, ImageVerdict] = {}
    # 1. Open the clip and choose a sampling step.
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise InputError(f"{path.name} is not a video this app can read ({type(error).__name__}).") from error
    with container:
        if not container.streams.video:
            raise InputError(f"{path.name} has no video track.")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        step = max(1, round(rate / sample_fps))
        # 2. Decode, keep every `step`-th frame, score its faces.
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % step:
                    continue
                image = np.ascontiguousarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                faces = analyzer.detect(image)
                verdict = spotter.score_image(image, faces)
                time = float(frame.time) if frame.time is not None else index / rate
                if faces:
                    history.add(index, verdict, time=time)
                verdicts[index] = verdict
                frames.append({"frame": index, "time": round(time, 3), **verdict.to_json()})
                if faces and len(samples) < WATERMARK_FRAMES:
                    samples.append((image, faces))
                if faces and (best is None or verdict.score > best[0]):
                    best = (verdict.score, image, verdict)
                if len(frames) >= max_frames:
                    break
        except av.error.FFmpegError as error:
            if not frames:
                raise InputError(f"{path.name} could not be decoded ({type(error).__name__}).") from error
    if not frames:
        raise InputError(f"{path.name} has no frames.")
    if not history.timeline:
        raise InputError(f"No face found in the sampled frames of {path.name}.")
    # 3. Clip summary: peak smoothed score, the faces of the top frame.
    top = history.top_frames()
    top_verdict = verdicts[top[0][0]]
    result = {
        "media": "clip",
        "score": round(max(p.smoothed for p in history.timeline), 4),
        "faces": [f.to_json() for f in top_verdict.faces],
        "frames": frames,
        "timeline": [p.to_json() for p in history.timeline],
        "top_frames": [{"frame": i, "score": round(s, 4)} for i, s in top],
        "flicker": None if history.flicker is None else round(history.flicker, 4),
        **provenance_json(path, samples),
    }
    overlay = render_overlay(best[1], best[2]) if best is not None else None
    return MediaAnalysis(result, overlay, render_timeline(history))


def summary(result: dict[str, Any]) -> str:
    """Plain-text report for people."""
    verdict = "looks SWAPPED" if result["score"] >= THRESHOLD else "looks real"
    lines = [f"{result['media']}: {verdict} (score {result['score']:.2f}; 0.5 is the threshold)"]
    for i, face in enumerate(result["faces"], 1):
        lines.append(f"  face {i} at {face['box']}: score {face['score']:.2f}")
        lines.extend(f"    - {sentence}" for sentence in face["explanations"])
    if "top_frames" in result:
        tops = ", ".join(f"{t['frame']} ({t['score']:.2f})" for t in result["top_frames"])
        lines.append(f"  highest-scoring frames: {tops}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.detect", description=__doc__.split("\n")[0])
    parser.add_argument("media", type=Path, help="a photo (.jpg, .png, ...) or a clip (.mp4, .webm, ...)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--detector", help=f"SCRFD face detector ONNX (default: ${DETECTOR_ENV})")
    parser.add_argument("--max-frames", type=int, default=60, help="at most this many sampled clip frames")
    parser.add_argument("--sample-fps", type=float, default=2.0, help="clip frames scored per second")
    args = parser.parse_args(argv)
    try:
        # 1. Inputs.
        media: Path = args.media
        if not media.is_file():
            raise InputError(f"The file {media} does not exist.")
        suffix = media.suffix.lower()
        if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
            raise InputError(f"{media.name}: unsupported file type '{suffix}' (use a photo or a video clip).")
        analyzer = FaceAnalyzer.from_paths(detector_path(args.detector))  # raises ModelError when missing
        spotter = Spotter()
        # 2. Score.
        if suffix in IMAGE_SUFFIXES:
            result = detect_photo(media, analyzer, spotter)
        else:
            result = detect_clip(media, analyzer, spotter, args.sample_fps, args.max_frames)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ModelError as error:
        print(f"model problem: {error}", file=sys.stderr)
        return 1
    except (SwapSpotError, Exception) as error:  # the CLI's last line of defence: no traceback for users
        print(f"internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
