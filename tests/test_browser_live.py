"""The live page in a real headless Chromium, with a fake camera of a real face photo that moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.provenance import label_present
from tests.app_server import ROOT, RunningApp, run_app
from tests.browser_session import browser_available, decode_index, live_page, summarise, write_camera
from tests.model_builders.recognizer import build_fake_arcface
from tests.model_builders.swapper import build_tiny_inswapper

pytestmark = [
    pytest.mark.browser,
    pytest.mark.shared,
    pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and playwright (see .ci/run)"),
]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, real_detector_path: Path) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("live-app")
    recognizer = build_fake_arcface(folder / "rec.onnx")
    swapper = build_tiny_inswapper(folder / "swap.onnx")
    args = ["--no-download", "--detector", str(real_detector_path), "--recognizer", str(recognizer)]
    args += ["--swapper", str(swapper)]
    with run_app(args, {"SWAPSPOT_MODEL_DIR": str(folder / "weights")}, folder / "app.log") as running:
        yield running


def test_swapped_frames_arrive_and_differ_inside_the_face(
    live_app: RunningApp, tmp_path: Path, real_detector_path: Path
) -> None:
    photo = load_image(ROOT / "examples" / "astronaut.png")
    camera, frames = write_camera(photo, tmp_path / "camera.y4m")
    analyzer = FaceAnalyzer.from_paths(real_detector_path)
    with live_page(live_app.url, camera) as page:
        page.page.wait_for_function("() => (window.__probe?.outputs.length || 0) >= 15", timeout=60_000)
        output = page.output_image()
        stats = page.text("live-stats")
        score = page.text("spot-score")
        figures = summarise(page.probe(), skip_s=0.0)
    # The displayed frame is a swapped version of the (mirrored) camera frame it carries the index of.
    camera_frame = np.ascontiguousarray(frames[decode_index(output)][:, ::-1])
    faces = analyzer.detect(camera_frame)
    assert faces, "the camera frame has a face"
    x1, y1, x2, y2 = (int(v) for v in faces[0].box)
    inside = np.abs(output[y1:y2, x1:x2].astype(int) - camera_frame[y1:y2, x1:x2].astype(int)).mean()
    above = np.abs(output[16 : y1 - 20].astype(int) - camera_frame[16 : y1 - 20].astype(int)).mean()
    assert inside > 10.0, f"face region barely changed ({inside:.1f})"
    assert above < inside / 2, f"pixels above the face changed too much ({above:.1f} vs {inside:.1f})"
    assert label_present(output)  # live frames carry the visible label too
    assert "fps displayed" in stats and "swaps/s" in stats and "latency" in stats
    assert "%" in score
    assert figures["frames"] >= 15


def test_an_uploaded_source_needs_consent_on_the_page(live_app: RunningApp) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(live_app.url, wait_until="domcontentloaded")
            upload = page.locator("input[type=file][accept='image/*']").first
            upload.set_input_files(str(ROOT / "examples" / "cameraman.png"))
            page.wait_for_timeout(1500)
            page.get_by_role("button", name="Use this photo").click()
            page.get_by_text("Please tick the box", exact=False).first.wait_for(timeout=20_000)
            assert "none chosen yet" in page.locator("#source-status").inner_text()
            upload.set_input_files(str(ROOT / "examples" / "cameraman.png"))
            page.wait_for_timeout(1500)
            page.locator("#consent input[type=checkbox]").check()
            page.get_by_role("button", name="Use this photo").click()
            page.wait_for_function(
                "() => document.querySelector('#source-status')?.innerText.includes('your photo')", timeout=30_000
            )
        finally:
            browser.close()


def test_a_clip_swap_can_be_cancelled_from_the_page(live_app: RunningApp, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.media_builders import ClipSpec, make_clip

    clip = make_clip(tmp_path / "long.mp4", ClipSpec(width=640, height=480, seconds=20.0, audio_codec="aac"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(live_app.url, wait_until="domcontentloaded")
            page.wait_for_selector("#source-examples img", timeout=60_000)
            page.locator("#source-examples img").first.click()
            page.wait_for_function(
                "() => document.querySelector('#source-status')?.innerText.includes('✔')", timeout=60_000
            )
            page.get_by_role("tab", name="Photo & clip").click()
            page.locator("#target input[type=file]").set_input_files(str(clip))
            page.wait_for_timeout(1500)
            page.locator("#swap-button").click()
            page.wait_for_timeout(3000)
            page.locator("#cancel-button").click()
            page.get_by_text("cancelled before it was finished", exact=False).wait_for(timeout=30_000)
        finally:
            browser.close()
