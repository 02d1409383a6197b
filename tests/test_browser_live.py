"""The live page in a real headless Chromium, with a fake camera of a real face photo that moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.provenance import label_present
from tests.app_server import ROOT, RunningApp, run_stand_in_app
from tests.browser_session import browser_available, decode_index, live_page, summarise, write_camera

pytestmark = [
    pytest.mark.browser,
    pytest.mark.shared,
    pytest.mark.skipif(not browser_available(), reason="needs /usr/bin/chromium and playwright (see .ci/run)"),
]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory, real_detector_path: Path) -> Iterator[RunningApp]:
    with run_stand_in_app(tmp_path_factory.mktemp("live-app"), real_detector_path) as running:
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
        # The page asks for lighter webcam JPEGs than the canvas default (quality 0.92) that Gradio gets.
        sizes = page.page.evaluate(
            """() => { const v = document.querySelector('#webcam video'), c = document.createElement('canvas');
                 c.width = v.videoWidth; c.height = v.videoHeight; c.getContext('2d').drawImage(v, 0, 0);
                 return [c.toDataURL('image/jpeg').length, c.toDataURL('image/jpeg', 0.92).length]; }"""
        )
        mirrored = page.page.evaluate("() => getComputedStyle(document.querySelector('#webcam video')).transform")
    assert sizes[0] < 0.75 * sizes[1], sizes
    assert mirrored.startswith("matrix(-1"), f"the camera preview is shown as a mirror ({mirrored})"
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


# ---------------------------------------------------------------------------------------------------------
# Two viewers at once, and what is left running when a viewer goes away
# ---------------------------------------------------------------------------------------------------------


def _tint(output: np.ndarray, camera_frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The mean colour change inside the face: the tiny swapper tints each source's faces differently."""
    x1, y1, x2, y2 = box
    return (output[y1:y2, x1:x2].astype(float) - camera_frame[y1:y2, x1:x2].astype(float)).mean(axis=(0, 1))


def test_two_pages_with_different_sources_each_only_ever_show_their_own(
    live_app: RunningApp, tmp_path: Path, real_detector_path: Path
) -> None:
    import time

    from gradio_client import Client, handle_file

    from pipelines.image_io import save_image
    from tests.browser_session import chromium, open_live_page

    photo = load_image(ROOT / "examples" / "astronaut.png")
    camera, frames = write_camera(photo, tmp_path / "camera.y4m")
    analyzer = FaceAnalyzer.from_paths(real_detector_path)
    # 1. Both pages stream at the same time, page 0 with the first example source, page 1 with the second.
    shown: dict[int, list[np.ndarray]] = {0: [], 1: []}
    statuses = {}
    with chromium(camera) as browser:
        pages = {index: open_live_page(browser, live_app.url, example_index=index) for index in (0, 1)}
        for index, page in pages.items():
            page.page.wait_for_function("() => (window.__probe?.outputs.length || 0) >= 5", timeout=60_000)
            statuses[index] = page.text("source-status")
        for _ in range(6):  # sampled while both keep streaming
            for index, page in pages.items():
                shown[index].append(page.output_image())
            time.sleep(0.3)
    assert statuses[0] != statuses[1]
    # 2. What each source does to a face, from the API (two more sessions).
    names = {0: "astronaut", 1: "cameraman"}
    clients = {index: Client(live_app.url, verbose=False) for index in (0, 1)}
    options = ("inswapper", "all", False, True)
    first = tmp_path / "first.png"
    save_image(np.ascontiguousarray(frames[0][:, ::-1]), first)
    for index, api in clients.items():
        api.predict(None, names[index], False, api_name="/choose_source")
        assert names[index] in statuses[index]
        for _ in range(40):  # the first calls of a session hand the swap to its worker (decoupled mode)
            _, detail = api.predict(handle_file(str(first)), *options, api_name="/swap_frame")
            if detail["mode"] == "direct" and not detail["message"]:
                break
            time.sleep(0.1)
        assert detail["mode"] == "direct", "the tiny swapper is fast enough for direct mode"
    # 3. Every displayed frame that shows a swap carries the tint of its own page's source, never the other
    #    one's (a frame may show no swap for a moment, e.g. while the face is searched for again).
    for index, outputs in shown.items():
        swapped = 0
        for output in outputs:
            camera_frame = np.ascontiguousarray(frames[decode_index(output)][:, ::-1])
            face = analyzer.detect(camera_frame)[0]
            box = tuple(int(v) for v in face.box)
            save_image(camera_frame, tmp_path / "frame.png")
            expected = {}
            for source, api in clients.items():
                image, detail = api.predict(handle_file(str(tmp_path / "frame.png")), *options, api_name="/swap_frame")
                assert detail["source"] == names[source]
                expected[source] = _tint(load_image(image), camera_frame, box)
            got = _tint(output, camera_frame, box)
            own, other = (np.linalg.norm(got - expected[s]) for s in (index, 1 - index))
            assert np.linalg.norm(expected[0] - expected[1]) > 5.0, "the two sources must tint differently"
            if min(own, other) >= np.linalg.norm(got):
                continue  # closer to no swap at all than to either source: this frame shows no swap
            swapped += 1
            assert own < other / 2, f"page {index} shows a face closer to the other source ({own:.1f} vs {other:.1f})"
        assert swapped >= len(outputs) // 2, f"page {index}: only {swapped} of {len(outputs)} frames showed a swap"


@pytest.fixture(scope="module")
def busy_app(tmp_path_factory: pytest.TempPathFactory, real_detector_path: Path) -> Iterator[RunningApp]:
    """The app with a swapper as slow as a real one on a CPU (over half a second), so the live view runs its
    background swap worker (decoupled mode)."""
    folder = tmp_path_factory.mktemp("busy-app")
    with run_stand_in_app(folder, real_detector_path, busy_convs=30, extra_args=("--precision", "fp32")) as running:
        yield running


def _cpu_share(app: RunningApp, seconds: float) -> float:
    import time

    before, started = app.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (app.cpu_seconds() - before) / (time.monotonic() - started)


@pytest.mark.parametrize("how", ["stop button", "tab closed"])
def test_the_swap_worker_stops_within_two_seconds(busy_app: RunningApp, tmp_path: Path, how: str) -> None:
    import time

    from tests.browser_session import chromium, open_live_page

    camera, _ = write_camera(load_image(ROOT / "examples" / "astronaut.png"), tmp_path / "camera.y4m")
    with chromium(camera) as browser:
        page = open_live_page(browser, busy_app.url)
        page.page.wait_for_function(
            "() => document.querySelector('#live-stats')?.innerText.includes('mode: decoupled')", timeout=60_000
        )
        page.page.wait_for_timeout(2000)
        streaming = _cpu_share(busy_app, 1.5)  # the display path plus a busy swap worker
        if how == "stop button":
            page.page.locator("#webcam button.capture-button").click()
        else:
            page.page.close()
        stopped = time.monotonic()
        time.sleep(max(0.0, stopped + 2.0 - time.monotonic()))
        after = _cpu_share(busy_app, 1.5)  # from 2 s to 3.5 s after the viewer went away
    assert streaming > 0.5, f"the worker should keep a core busy while streaming ({streaming:.2f})"
    assert after < 0.1, f"the server still uses {after:.2f} of a core 2 s after the stream stopped ({how})"
