"""Peak memory of the app with its models loaded: `python -m benchmarks.bench_memory [--swapper PATH]`.

Starts `python app.py` with the real SCRFD detector from ../shared (or --detector), the random-weight
inswapper topology (554 MB, like the real file) unless --swapper is given, and a random-weight recognizer in
ArcFace's IResNet-50 layout (174 MB, like w600k_r50); runs one photo swap, a few live frames and a detector
check through the API, then reads the process's peak resident memory (VmHWM). The real default detector
(det_10g, 17 MB) and landmarks (5 MB) are larger than the stand-ins used here: their file sizes are added to
give the estimate for the default models.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.suite import SHARED, test_recognizer, topology_swapper  # noqa: E402
from tests.app_server import run_app  # noqa: E402

MISSING_REAL_MB = (5_030_888 + 16_923_827 - 3_300_000) / 2**20  # 2d106det + det_10g - SCRFD 2.5G


def status_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024.0
    return values


def main(argv: list[str] | None = None) -> int:
    from gradio_client import Client, handle_file

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", type=Path, default=SHARED / "models" / "scrfd_2.5g_kps.onnx")
    parser.add_argument("--swapper", type=Path, default=None)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"))
    args = parser.parse_args(argv)
    swapper = args.swapper or topology_swapper()
    flags = ["--no-download", "--detector", str(args.detector), "--recognizer", str(test_recognizer())]
    flags += ["--swapper", str(swapper), "--precision", args.precision]
    example = ROOT / "examples" / "astronaut.png"
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SWAPSPOT_MODEL_DIR": str(Path(tmp) / "weights")}
        with run_app(flags, env, Path(tmp) / "app.log") as app:
            client = Client(app.url, verbose=False)
            options = ("inswapper", "all", False, True)
            client.predict(None, "cameraman", False, handle_file(str(example)), *options, api_name="/swap_image")
            client.predict(None, "cameraman", False, api_name="/choose_source")
            for _ in range(3):
                client.predict(handle_file(str(example)), *options, api_name="/swap_frame")
            client.predict(handle_file(str(example)), api_name="/check_media")
            measured = status_mb(app.process.pid)
    result = {
        **{f"{k}_mb": round(v) for k, v in measured.items()},
        "estimate_with_default_models_mb": round(measured["VmHWM"] + MISSING_REAL_MB),
        "swapper": "random-weight inswapper topology" if args.swapper is None else str(swapper),
        "precision": args.precision,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
