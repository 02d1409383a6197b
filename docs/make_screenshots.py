"""Screenshots for the README, taken with headless Debian Chromium against the running app.

    python docs/make_screenshots.py --detector ../shared/models/scrfd_2.5g_kps.onnx   # needs chromium + playwright

The app is started with the given detector and (unless given) an ArcFace-shaped test recognizer and a
tiny stand-in swapper, so the screenshots show the page, not the real model's output quality.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.image_io import load_image  # noqa: E402
from tests.app_server import run_app  # noqa: E402
from tests.browser_session import live_page, write_camera  # noqa: E402
from tests.model_builders.recognizer import build_fake_arcface  # noqa: E402
from tests.model_builders.swapper import build_tiny_inswapper  # noqa: E402

OUT = ROOT / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detector", type=Path, required=True)
    parser.add_argument("--target", type=Path, default=ROOT / "examples" / "astronaut.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = ["--detector", str(args.detector), "--recognizer", str(build_fake_arcface(work / "rec.onnx"))]
        models += ["--swapper", str(build_tiny_inswapper(work / "swap.onnx")), "--no-download", "--engine", "classic"]
        camera, _ = write_camera(load_image(ROOT / "examples" / "astronaut.png"), work / "camera.y4m")
        env = {"SWAPSPOT_MODEL_DIR": str(work / "weights")}
        with run_app(models, env, work / "app.log") as app, live_page(app.url, camera, 1, "classic") as live:
            page = live.page
            page.wait_for_timeout(8000)
            page.screenshot(path=str(OUT / "live.png"), full_page=True)
            # Photo & clip: the astronaut photo as target of the cameraman source.
            page.get_by_role("tab", name="Photo & clip").click()
            page.locator("#target input[type=file]").set_input_files(str(args.target))
            page.wait_for_timeout(1000)
            page.locator("#swap-button").click()
            page.wait_for_function(
                "() => document.querySelector('#photo-spot-score')?.innerText.includes('%')", timeout=60_000
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "photo.png"), full_page=True)
            # Check: the real example photo (no credentials, no watermark).
            page.get_by_role("tab", name="Check any photo or clip").click()
            page.locator("#check-media input[type=file]").set_input_files(str(ROOT / "examples" / "astronaut.png"))
            page.wait_for_timeout(1000)
            page.locator("#check-button").click()
            page.wait_for_function(
                "() => document.querySelector('#check-score')?.innerText.includes('%')", timeout=60_000
            )
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "check.png"), full_page=True)
    print("wrote", ", ".join(str(OUT / n) for n in ("live.png", "photo.png", "check.png")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
