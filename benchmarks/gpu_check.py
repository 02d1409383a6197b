"""GPU check, one command for a lent GPU machine: `python -m benchmarks.gpu_check [--frames 240] [--json]`.

Prints JSON like `python -m benchmarks --json`, for the GPU: which provider each session really runs on,
per-stage costs (CUDA execution provider with IO binding), end-to-end frames per second on a 1280x720
single-face clip (decode, detect/track, swap, paste-back, label, watermark, encode) with frames swapped
one at a time and with worker threads, and the live per-frame path at 640x480. Where onnxruntime has no
CUDA provider it prints a clear "no GPU" result (exit code 0).
Needs `pip install onnxruntime-gpu` instead of onnxruntime (see the README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suite import (  # noqa: E402
    SHARED,
    clip,
    median_ms,
    ours_clip,
    stage_costs,
    test_recognizer,
    topology_swapper,
)
from pipelines import onnx_runtime  # noqa: E402
from pipelines.face_analysis import FaceAnalyzer  # noqa: E402
from pipelines.loading import gpu_available  # noqa: E402
from pipelines.types import RuntimeSettings  # noqa: E402


def live_direct(analyzer: FaceAnalyzer, swapper: Path, frames: int = 150) -> dict[str, Any]:
    """The live per-frame path (`LiveSession.process`) on a moving 640x480 face, as the page runs it."""
    import numpy as np

    from benchmarks.suite import ROOT as REPO
    from pipelines.engine_inswapper import InswapperEngine
    from pipelines.image_io import load_image
    from pipelines.live import LiveModels, LiveSession
    from pipelines.outputs import OutputPolicy, mark_frame
    from pipelines.provenance import WatermarkPayload
    from pipelines.spot import Spotter
    from pipelines.swap_engines import SourceIdentity
    from pipelines.types import SwapSettings
    from tests.camera_file import moving_face_frames

    engine = InswapperEngine.from_path(swapper, RuntimeSettings())
    payload, policy, spotter = WatermarkPayload.new(), OutputPolicy(), Spotter()
    models = LiveModels(
        detect=analyzer.detect,
        engine=engine,
        post_process=lambda frame, faces: mark_frame(frame, faces, payload, policy),
        score=lambda frame, faces: spotter.score_image(frame, faces),
    )
    emb = analyzer.analyze(load_image(REPO / "examples" / "cameraman.png"))[0].embedding
    session = LiveSession()
    session.set_source(engine.prepare_source(SourceIdentity(emb, np.zeros((256, 256, 3), np.uint8), 1)), "test")
    camera = moving_face_frames(load_image(REPO / "examples" / "astronaut.png"), 60, (640, 480))
    times, modes = [], []
    for index in range(frames):
        started = time.perf_counter()
        result = session.process(camera[index % len(camera)], models, SwapSettings())
        times.append(time.perf_counter() - started)
        modes.append(result.stats.mode)
        if result.stats.mode == "decoupled":
            time.sleep(1 / 30)  # a camera's pace, so the worker measures the swap and direct mode can start
    session.stop()
    direct = [t for t, mode in zip(times, modes, strict=True) if mode == "direct"]
    return {
        "frames": frames,
        "direct_frames": len(direct),
        "mode_last": modes[-1],
        "per_frame_ms_median_direct": statistics.median(direct) * 1000.0 if direct else None,
        "per_frame_ms_p90_direct": sorted(direct)[int(0.9 * (len(direct) - 1))] * 1000.0 if direct else None,
        "server_fps_direct": 1.0 / statistics.median(direct) if direct else None,
    }


def tensorrt_forward(swapper: Path) -> dict[str, Any]:
    """The swap forward with TensorRT first (SWAPSPOT_TENSORRT=1), when this onnxruntime offers it."""
    import numpy as np

    from pipelines.engine_inswapper import InswapperEngine

    if "TensorrtExecutionProvider" not in onnx_runtime.available_providers():
        return {"result": "this onnxruntime build has no TensorRT provider"}
    os.environ[onnx_runtime.TENSORRT_ENV] = "1"
    try:
        started = time.perf_counter()
        engine = InswapperEngine.from_path(swapper, RuntimeSettings())
        crop, latent = np.zeros((128, 128, 3), np.uint8), np.ones((1, 512), np.float32) / 512**0.5
        engine.forward(crop, latent)
        build_s = time.perf_counter() - started
        providers = engine.session.get_providers()
        return {
            "providers": providers,
            "first_run_s": build_s,
            "swap_forward_ms": median_ms(lambda: engine.forward(crop, latent), repeats=20),
        }
    except Exception as error:  # TensorRT libraries missing, unsupported ops: report, do not fail the check
        return {"result": f"TensorRT failed: {type(error).__name__}: {error}"}
    finally:
        os.environ.pop(onnx_runtime.TENSORRT_ENV, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--detector", type=Path, default=SHARED / "models" / "scrfd_2.5g_kps.onnx")
    parser.add_argument("--swapper", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-tensorrt", action="store_true")
    parser.add_argument("--anyway", action="store_true", help="run the measurements even without a GPU (a dry run)")
    args = parser.parse_args(argv)
    providers = onnx_runtime.available_providers()
    result: dict[str, Any] = {"gpu": gpu_available(), "providers": providers}
    if not result["gpu"] and not args.anyway:
        result["result"] = (
            "no GPU: onnxruntime offers no CUDAExecutionProvider here "
            f"(providers: {', '.join(providers)}). Install onnxruntime-gpu on a machine with an NVIDIA GPU."
        )
        print(json.dumps(result, indent=2) if args.json else result["result"])
        return 0
    swapper = args.swapper or topology_swapper()
    analyzer = FaceAnalyzer.from_paths(args.detector, test_recognizer())
    result["session_device"] = onnx_runtime.session_device(analyzer.detector.session)
    result["detector_providers"] = analyzer.detector.session.get_providers()
    result["swapper"] = "random-weight inswapper topology" if args.swapper is None else str(swapper)
    result["stages_ms"] = stage_costs(analyzer, swapper, None)
    with tempfile.TemporaryDirectory() as tmp:
        src = clip(Path(tmp) / "clip.mp4", args.frames)
        result["clip_1280x720_fp32_one_frame_at_a_time"] = ours_clip(
            analyzer, swapper, swapper, src, Path(tmp) / "a.mp4", workers=0
        )
        result["clip_1280x720_fp32"] = ours_clip(analyzer, swapper, swapper, src, Path(tmp) / "b.mp4")
    result["live_640x480"] = live_direct(analyzer, swapper)
    if not args.no_tensorrt:
        result["tensorrt"] = tensorrt_forward(swapper)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
