"""Swap & Spot: make a face swap, then catch it. Start with `python app.py` (see README.md).

This file only parses options, prepares the models and wires the page; the work lives in `pipelines/`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# Privacy: no usage analytics leave this machine. Must be set before gradio is imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

ENGINES = ("inswapper", "classic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py",
        description=(
            "Swap & Spot: a face swap and a deepfake detector side by side, in the browser. "
            "On first start the default models are downloaded (InsightFace models: non-commercial research use only)."
        ),
    )
    parser.add_argument("--host", default=None, help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--source", type=Path, default=None, help="preselect this photo as the source face")
    parser.add_argument("--engine", choices=ENGINES, default=None, help="preselect the swap engine")
    parser.add_argument("--detector", type=Path, default=None, help="use this local SCRFD ONNX file (unverified)")
    parser.add_argument("--recognizer", type=Path, default=None, help="use this local ArcFace ONNX file (unverified)")
    parser.add_argument("--landmarks", type=Path, default=None, help="use this local 2d106det ONNX file (unverified)")
    parser.add_argument("--swapper", type=Path, default=None, help="use this local inswapper ONNX file (unverified)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8"),
        default="auto",
        help="swapper precision on a CPU (auto: a checked int8 version once prepared)",
    )
    parser.add_argument("--no-download", action="store_true", help="never download models; use what is installed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[swap&spot] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Heavy imports after argument parsing, so `--help` answers at once.
    from pipelines.errors import SwapSpotError
    from pipelines.loading import ModelOverrides
    from pipelines.startup import prepare_models
    from ui.page import AppConfig, build_page, launch_options

    overrides = ModelOverrides(args.detector, args.recognizer, args.landmarks, args.swapper)
    report = prepare_models(overrides, download=not args.no_download)
    for role in report.missing(include_optional=False):
        logging.warning("model for '%s' unavailable: the page will say how to install it", role)
    try:
        config = AppConfig(overrides, report, args.source, args.engine, args.precision)
        demo = build_page(config)
    except SwapSpotError as error:
        print(f"Cannot start: {error}", file=sys.stderr)
        return 2
    demo.queue(default_concurrency_limit=2)
    demo.launch(server_name=args.host, server_port=args.port, **launch_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
