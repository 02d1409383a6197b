"""The benchmark suite: per-stage costs, int8 vs fp32, our clip path vs the naive insightface loop, memory.

    python -m benchmarks [--json] [--frames 8] [--swapper PATH] [--detector PATH] [--recognizer PATH]
                         [--live] [--no-naive]

Without the real swapper it builds (once, cached in ~/.cache/swapspot-bench) a RANDOM-WEIGHT model in
the exact inswapper topology, so the swap costs what the real one costs, and says so in its output.
Without ../shared and --detector it cannot run (the real detector is what makes detection timings real).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipelines import onnx_runtime  # noqa: E402
from pipelines.face_align import norm_crop  # noqa: E402
from pipelines.face_analysis import FaceAnalyzer  # noqa: E402
from pipelines.image_io import load_image  # noqa: E402
from pipelines.types import ImageRGB, RuntimeSettings  # noqa: E402

CACHE = Path.home() / ".cache" / "swapspot-bench"
SHARED = ROOT.parent / "shared"


def median_ms(fn: Callable[[], object], repeats: int = 5, warm: int = 1) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def topology_swapper() -> Path:
    from tests.model_builders.swapper import build_inswapper_topology

    path = CACHE / "inswapper_topology_seed0.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building the random-weight inswapper topology at {path} (once, ~30 s)...", file=sys.stderr)
        build_inswapper_topology(path, seed=0)
    return path


def test_recognizer() -> Path:
    """A random-weight model in ArcFace's IResNet-50 layout (w600k_r50's size and cost): both our path and
    the naive loop pay what recognition really costs."""
    from tests.model_builders.recognizer import build_arcface_r50_topology

    path = CACHE / "arcface_r50_topology_seed0.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build_arcface_r50_topology(path)
    return path


def scene(width: int, height: int) -> ImageRGB:
    """The astronaut example placed in a width x height frame (one face)."""
    from tests.camera_file import moving_face_frames

    return moving_face_frames(load_image(ROOT / "examples" / "astronaut.png"), 1, (width, height))[0]


def clip(path: Path, frames: int, width: int = 1280, height: int = 720) -> Path:
    import av

    from tests.camera_file import moving_face_frames

    images = moving_face_frames(load_image(ROOT / "examples" / "astronaut.png"), frames, (width, height))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# 1. Per-stage costs ---------------------------------------------------------------------------------------


def stage_costs(
    analyzer: FaceAnalyzer, swapper: Path, int8: Path | None, winograd: Path | None = None
) -> dict[str, Any]:
    from pipelines.engine_inswapper import InswapperEngine
    from pipelines.outputs import OutputPolicy, mark_frame
    from pipelines.paste_back import paste_back
    from pipelines.provenance import WatermarkPayload
    from pipelines.spot import Spotter

    frame, small = scene(1280, 720), scene(640, 480)
    face = analyzer.detect(frame)[0]
    crop, to_crop = norm_crop(frame, face.kps, 128)
    out: dict[str, Any] = {
        "detect_640x480_ms": median_ms(functools.partial(analyzer.detect, small)),
        "detect_1280x720_ms": median_ms(lambda: analyzer.detect(frame)),
        "recognize_ms": median_ms(lambda: analyzer.embed(frame, face)) if analyzer.recognizer else None,
        "paste_back_1280x720_ms": median_ms(lambda: paste_back(frame, crop, to_crop), repeats=20),
    }
    latent = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    latent /= np.linalg.norm(latent)
    for name, path in (("fp32", swapper), ("fp32_winograd", winograd), ("int8", int8)):
        if path is None:
            out[f"swap_forward_{name}_ms"] = None
            continue
        engine = InswapperEngine.from_path(swapper, RuntimeSettings(), run_path=path)
        out[f"swap_forward_{name}_ms"] = median_ms(functools.partial(engine.forward, crop, latent), repeats=3)
    spotter = Spotter()
    out["spot_detector_per_face_ms"] = median_ms(lambda: spotter.score_face(frame, face), repeats=10)
    payload, policy = WatermarkPayload.new(), OutputPolicy()
    out["watermark_and_label_per_face_ms"] = median_ms(lambda: mark_frame(frame, [face], payload, policy), repeats=10)
    if out["swap_forward_fp32_ms"] and out["swap_forward_int8_ms"]:
        out["int8_speedup"] = out["swap_forward_fp32_ms"] / out["swap_forward_int8_ms"]
    return out


# 2. Clips: ours (int8 and fp32) vs the naive insightface loop --------------------------------------------


class TimedForward:
    """Wraps an engine's forward to add up the time spent in the swap network."""

    def __init__(self, forward: Callable[..., Any]) -> None:
        self.forward, self.seconds = forward, 0.0

    def __call__(self, *args: Any) -> Any:
        started = time.perf_counter()
        result = self.forward(*args)
        self.seconds += time.perf_counter() - started
        return result


def ours_clip(
    analyzer: FaceAnalyzer, swapper: Path, run_path: Path, src: Path, dst: Path, workers: int | None = None
) -> dict[str, float]:
    """Our clip path (`swap_clip`, with the app's label and watermark on every frame)."""
    from pipelines.engine_inswapper import InswapperEngine
    from pipelines.outputs import OutputPolicy, mark_frame
    from pipelines.provenance import WatermarkPayload
    from pipelines.swap_engines import SourceIdentity
    from pipelines.swapping import clip_workers, create_swap_job, swap_clip

    engine = InswapperEngine.from_path(swapper, RuntimeSettings(), run_path=run_path)
    engine.forward(np.zeros((128, 128, 3), np.uint8), np.ones((1, 512), np.float32) / 512**0.5)  # warm-up
    timed = TimedForward(engine.forward)
    engine.forward = timed  # type: ignore[method-assign,assignment]
    emb = analyzer.analyze(load_image(ROOT / "examples" / "cameraman.png"))[0].embedding
    identity = SourceIdentity(emb, np.zeros((256, 256, 3), np.uint8), 1)
    job = create_swap_job(analyzer, engine, [identity])
    payload, policy = WatermarkPayload.new(), OutputPolicy()

    def mark(frame: ImageRGB, swapped: Any, index: int) -> ImageRGB:
        return mark_frame(frame, [s.face for s in swapped], payload, policy)

    workers = clip_workers(engine) if workers is None else workers
    started = time.perf_counter()
    result = swap_clip(src, dst, job, post_frame=mark, workers=workers)
    total = time.perf_counter() - started
    return {
        "frames": result.frames,
        "seconds": total,
        "fps": result.frames / total,
        "forward_s": timed.seconds,
        "workers": workers,
    }


def naive_clip(detector: Path, recognizer: Path, swapper: Path, src: Path, dst: Path) -> dict[str, float]:
    """What a user writes with insightface: FaceAnalysis.get + INSwapper.get(paste_back=True) per frame."""
    import contextlib
    import io

    import av
    from insightface.app.common import Face as InsightFace
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.inswapper import INSwapper
    from insightface.model_zoo.scrfd import SCRFD

    det = SCRFD(str(detector))
    det.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    rec = ArcFaceONNX(str(recognizer))
    rec.prepare(-1)
    with contextlib.redirect_stdout(io.StringIO()):
        swap = INSwapper(str(swapper))
    run = swap.session.run
    spent = {"forward": 0.0}

    def timed_run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = run(*args, **kwargs)
        spent["forward"] += time.perf_counter() - started
        return result

    swap.session.run = timed_run

    def analyse(bgr: np.ndarray) -> list[InsightFace]:
        boxes, kpss = det.detect(bgr, input_size=(640, 640))
        faces = []
        for box, kps in zip(boxes, kpss, strict=True):
            face = InsightFace(bbox=box[:4], kps=kps, det_score=box[4])
            rec.get(bgr, face)
            faces.append(face)
        return faces

    source_bgr = np.ascontiguousarray(load_image(ROOT / "examples" / "cameraman.png")[:, :, ::-1])
    source = analyse(source_bgr)[0]
    swap.get(source_bgr, source, source, paste_back=True)  # warm-up, as ours gets
    spent["forward"] = 0.0
    started = time.perf_counter()
    frames = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for frame in inp.decode(video=0):
            bgr = frame.to_ndarray(format="bgr24")
            for face in analyse(bgr):
                bgr = swap.get(bgr, face, source, paste_back=True)
            for packet in stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")):
                out.mux(packet)
            frames += 1
        for packet in stream.encode():
            out.mux(packet)
    total = time.perf_counter() - started
    return {"frames": frames, "seconds": total, "fps": frames / total, "forward_s": spent["forward"]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--frames", type=int, default=8, help="frames of the 1280x720 clip")
    parser.add_argument("--detector", type=Path, default=SHARED / "models" / "scrfd_2.5g_kps.onnx")
    parser.add_argument("--recognizer", type=Path, default=None)
    parser.add_argument("--swapper", type=Path, default=None)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive insightface loop")
    parser.add_argument("--live", action="store_true", help="also run the real-browser live benchmark")
    args = parser.parse_args(argv)
    if not args.detector.is_file():
        print(f"needs a real SCRFD detector: {args.detector} not found (pass --detector)", file=sys.stderr)
        return 2
    from pipelines.loading import example_photos, fp32_swapper_for, int8_swapper_for

    random_swapper = args.swapper is None
    swapper = args.swapper or topology_swapper()
    recognizer = args.recognizer or test_recognizer()
    analyzer = FaceAnalyzer.from_paths(args.detector, recognizer)
    int8, int8_reason = int8_swapper_for(swapper, "auto", analyzer, build=True)
    winograd, winograd_reason = fp32_swapper_for(swapper, build=True, photos=example_photos())
    report: dict[str, Any] = {
        "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform()},
        "providers": onnx_runtime.available_providers(),
        "swapper": "random-weight inswapper topology (same cost as the real one)" if random_swapper else str(swapper),
        "recognizer": "random-weight ArcFace IResNet-50 topology (same cost as w600k_r50)"
        if args.recognizer is None
        else str(recognizer),
        "detector": str(args.detector),
        "int8": int8_reason,
        "fp32_winograd": winograd_reason,
        "stages_ms": stage_costs(analyzer, swapper, int8, winograd),
    }
    with tempfile.TemporaryDirectory() as tmp:
        src = clip(Path(tmp) / "clip.mp4", args.frames)
        clips: dict[str, Any] = {}
        if int8 is not None:
            clips["ours_int8"] = ours_clip(analyzer, swapper, int8, src, Path(tmp) / "a.mp4")
        clips["ours_fp32"] = ours_clip(analyzer, swapper, swapper, src, Path(tmp) / "b.mp4")
        if not args.no_naive:
            clips["naive_insightface_fp32"] = naive_clip(args.detector, recognizer, swapper, src, Path(tmp) / "c.mp4")
        for row in clips.values():
            row["non_forward_ms_per_frame"] = (row["seconds"] - row["forward_s"]) * 1000.0 / max(row["frames"], 1)
        if "naive_insightface_fp32" in clips:
            naive = clips["naive_insightface_fp32"]
            best = clips.get("ours_int8", clips["ours_fp32"])
            clips["throughput_vs_naive"] = best["fps"] / naive["fps"]
            clips["non_forward_vs_naive"] = clips["ours_fp32"]["non_forward_ms_per_frame"] / max(
                naive["non_forward_ms_per_frame"], 1e-9
            )
        report["clip_1280x720"] = clips
    report["peak_rss_mb_this_process"] = peak_rss_mb()
    if args.live:
        from benchmarks.bench_live import main as live_main

        live_main(["--json", "--seconds", "30"])
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def render(report: dict[str, Any]) -> str:
    lines = [
        f"Swap & Spot benchmarks on {report['machine']['cpu_count']} cores "
        f"({'CUDA GPU' if 'CUDAExecutionProvider' in report['providers'] else 'CPU only'})",
        f"swapper: {report['swapper']}",
        f"recognizer: {report['recognizer']}",
        f"{report['int8']}",
        f"{report['fp32_winograd']}",
        "",
        "stage                                 ms",
    ]
    for key, value in report["stages_ms"].items():
        lines.append(f"  {key:<36}{'—' if value is None else f'{value:9.2f}'}")
    lines += ["", "1280x720 clip, one face per frame       fps   s/frame  non-forward ms/frame"]
    for key, row in report["clip_1280x720"].items():
        if isinstance(row, dict):
            per_frame = row["seconds"] / row["frames"]
            lines.append(f"  {key:<34}{row['fps']:6.2f}  {per_frame:7.2f}  {row['non_forward_ms_per_frame']:10.1f}")
        else:
            lines.append(f"  {key:<34}{row:6.2f}x")
    lines.append(f"\npeak RSS of this process: {report['peak_rss_mb_this_process']:.0f} MB")
    return "\n".join(lines)
