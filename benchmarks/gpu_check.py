"""GPU check, one command for a lent GPU machine: `python -m benchmarks.gpu_check [--frames 120] [--json]`.

Prints the same JSON as `python -m benchmarks --json` for the GPU (per-stage costs with the CUDA
execution provider and IO binding, and end-to-end frames per second on a 1280x720 single-face clip),
or, where onnxruntime has no CUDA provider, a clear "no GPU" result (exit code 0).
Needs `pip install onnxruntime-gpu==<the onnxruntime version in requirements.txt>` instead of onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suite import SHARED, clip, ours_clip, stage_costs, test_recognizer, topology_swapper  # noqa: E402
from pipelines import onnx_runtime  # noqa: E402
from pipelines.face_analysis import FaceAnalyzer  # noqa: E402
from pipelines.loading import gpu_available  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--detector", type=Path, default=SHARED / "models" / "scrfd_2.5g_kps.onnx")
    parser.add_argument("--swapper", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    providers = onnx_runtime.available_providers()
    result: dict[str, Any] = {"gpu": gpu_available(), "providers": providers}
    if not result["gpu"]:
        result["result"] = (
            "no GPU: onnxruntime offers no CUDAExecutionProvider here "
            f"(providers: {', '.join(providers)}). Install onnxruntime-gpu on a machine with an NVIDIA GPU."
        )
        print(json.dumps(result, indent=2) if args.json else result["result"])
        return 0
    swapper = args.swapper or topology_swapper()
    analyzer = FaceAnalyzer.from_paths(args.detector, test_recognizer())
    result["session_device"] = onnx_runtime.session_device(analyzer.detector.session)
    result["swapper"] = "random-weight inswapper topology" if args.swapper is None else str(swapper)
    result["stages_ms"] = stage_costs(analyzer, swapper, None)
    with tempfile.TemporaryDirectory() as tmp:
        src = clip(Path(tmp) / "clip.mp4", args.frames)
        result["clip_1280x720_fp32"] = ours_clip(analyzer, swapper, swapper, src, Path(tmp) / "out.mp4")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
