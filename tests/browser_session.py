"""Drive the real page in headless Debian Chromium with a fake camera (used by the browser test and the
live benchmark). The camera file is a real face photo that moves; each frame carries its index as the
brightness of a strip along the top edge, so the page can tell which camera frame a displayed output
frame came from (capture-to-display latency) without any help from the app.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.types import ImageRGB
from tests.camera_file import moving_face_frames, write_y4m

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1400, "height": 1150}
STRIP_ROWS = 16  # top rows carrying the frame index
LOOP_FRAMES = 60  # 2 s at 30 fps: latencies are far below one loop
LEVEL0, LEVEL_STEP = 30.0, 3.0  # brightness of frame k's strip: LEVEL0 + LEVEL_STEP * k
PROBE_SAMPLE_EVERY = 3  # the probe reads the index strip from every 3rd preview and output frame only


def browser_available() -> bool:
    if not Path(CHROMIUM).exists():
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def camera_frames(photo: ImageRGB) -> list[ImageRGB]:
    frames = moving_face_frames(photo, LOOP_FRAMES)
    for index, frame in enumerate(frames):
        frame[:STRIP_ROWS] = int(round(LEVEL0 + LEVEL_STEP * index))
    return frames


def write_camera(photo: ImageRGB, path: Path) -> tuple[Path, list[ImageRGB]]:
    frames = camera_frames(photo)
    return write_y4m(frames, path), frames


def decode_index(image: ImageRGB) -> int:
    level = float(np.median(image[2 : STRIP_ROWS - 2, 8:-8]))
    return int(round((level - LEVEL0) / LEVEL_STEP)) % LOOP_FRAMES


# In-page probe: remembers when each camera frame index was first presented in the preview, and for every
# new output image, when it was displayed and which camera frame it shows.
PROBE_JS = """
([strip, level0, step, loop, sampleEvery]) => {
  const probe = { shown: {}, outputs: [], started: performance.now() };
  window.__probe = probe;
  // A small fixed canvas: only a 96 px patch from the middle of the strip is read (the probe must cost the
  // page it measures as little as possible: no canvas resize, a 96x12 read instead of a full-width one).
  const patch = 96;
  const canvas = document.createElement('canvas');
  canvas.width = patch; canvas.height = strip;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const indexOf = (source, w, h) => {
    ctx.drawImage(source, Math.floor(w / 2 - patch / 2), 0, patch, strip, 0, 0, patch, strip);
    const data = ctx.getImageData(0, 2, patch, strip - 4).data;
    const values = [];
    for (let i = 0; i < data.length; i += 4 * 3) {
      values.push(0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2]);
    }
    values.sort((a, b) => a - b);
    const level = values[Math.floor(values.length / 2)];
    return ((Math.round((level - level0) / step) % loop) + loop) % loop;
  };
  // The preview: every SAMPLE_EVERY-th presented camera frame is read; the camera plays at a steady 30 fps,
  // so the frames in between are dated from it (reading every frame cost the page it measures 0.04 core).
  const video = document.querySelector('#webcam video');
  const frameMs = 1000 / 30;
  let previewCalls = 0;
  const onFrame = (now, meta) => {
    if (video.videoWidth && previewCalls++ % sampleEvery === 0) {
      const idx = indexOf(video, video.videoWidth, video.videoHeight);
      for (let k = 0; k < sampleEvery; k++) {
        const next = (idx + k) % loop, at = now + k * frameMs;
        if (!(next in probe.shown) || at - probe.shown[next] > 1000) probe.shown[next] = at;
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  // Every new output frame: when its <img> got the new picture and finished decoding it.
  let lastSrc = null, outputCalls = 0;
  const seen = async (img) => {
    const src = img.src;
    if (!src || src === lastSrc) return;
    lastSrc = src;
    // The page's own <img>: once it has decoded its new picture, count it; on every SAMPLE_EVERY-th one, read
    // the strip from it too (drawing a decoded <img> into a canvas costs the page about 4 ms a frame).
    try { await img.decode(); } catch (e) { return; }
    if (img.src !== src) return;  // already replaced by a newer frame
    const now = performance.now();
    if (outputCalls++ % sampleEvery !== 0) { probe.outputs.push({ t: now, idx: null, latency: null }); return; }
    const idx = indexOf(img, img.naturalWidth, img.naturalHeight);
    const captured = probe.shown[idx];
    const loopMs = loop * 1000 / 30;  // the fake camera plays the file at 30 fps and loops
    const latency = captured === undefined ? null : (now - captured) % loopMs;
    probe.outputs.push({ t: now, idx: idx, latency: latency });
  };
  const root = document.querySelector('#swapped');
  new MutationObserver(() => {
    const img = root.querySelector('img');
    if (img) seen(img);
  }).observe(root, { subtree: true, childList: true, attributes: true, attributeFilter: ['src'] });
  return true;
}
"""


@dataclass
class LivePage:
    page: Any

    def probe(self) -> dict[str, Any]:
        return dict(self.page.evaluate("() => window.__probe"))

    def output_image(self) -> ImageRGB:
        """The displayed output frame, decoded."""
        import base64

        import cv2

        src = self.page.locator("#swapped img").get_attribute("src") or ""
        data = base64.b64decode(src.split(",", 1)[1])
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise AssertionError("the displayed output is not a decodable JPEG")
        return np.ascontiguousarray(np.asarray(decoded, dtype=np.uint8)[:, :, ::-1])

    def text(self, elem_id: str) -> str:
        return str(self.page.locator(f"#{elem_id}").inner_text())

    def outputs_seen(self) -> int:
        return int(self.page.evaluate("() => window.__probe?.outputs.length || 0"))


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def open_live_page(browser: Any, url: str, example_index: int = 0, engine: str | None = None) -> LivePage:
    """A new browser context (its own Gradio session): choose an example source, start the webcam stream
    and the probe."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#source-examples img", timeout=60_000)
    page.locator("#source-examples img").nth(example_index).click()
    page.wait_for_function("() => document.querySelector('#source-status')?.innerText.includes('✔')", timeout=60_000)
    if engine is not None:
        page.locator("#engine label", has_text="Classic" if engine == "classic" else "Neural").click()
    page.locator("#webcam").get_by_text("Click to Access Webcam").click()
    page.wait_for_function("() => (document.querySelector('#webcam video')?.videoWidth || 0) > 0", timeout=30_000)
    page.evaluate(PROBE_JS, [STRIP_ROWS, LEVEL0, LEVEL_STEP, LOOP_FRAMES, PROBE_SAMPLE_EVERY])
    page.locator("#webcam button.capture-button").click()
    return LivePage(page)


@contextmanager
def chromium(camera: Path) -> Iterator[Any]:
    """Headless Debian Chromium whose fake camera plays `camera` (a .y4m file)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or CHROMIUM,
            args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def live_page(url: str, camera: Path, example_index: int = 0, engine: str | None = None) -> Iterator[LivePage]:
    """One live page streaming in its own Chromium."""
    with chromium(camera) as browser:
        yield open_live_page(browser, url, example_index, engine)


def summarise(probe: dict[str, Any], skip_s: float = 3.0) -> dict[str, float]:
    """Display fps and capture-to-display latency from the probe, ignoring the first seconds (warm-up)."""
    outputs = [o for o in probe["outputs"] if o["t"] - probe["started"] > skip_s * 1000]
    if len(outputs) < 2:
        return {"display_fps": 0.0, "latency_median_ms": float("nan"), "latency_p90_ms": float("nan"), "frames": 0}
    span = (outputs[-1]["t"] - outputs[0]["t"]) / 1000.0
    latencies = sorted(o["latency"] for o in outputs if o["latency"] is not None)
    return {
        "display_fps": (len(outputs) - 1) / span if span > 0 else 0.0,
        "latency_median_ms": float(np.median(latencies)) if latencies else float("nan"),
        "latency_p90_ms": float(np.percentile(latencies, 90)) if latencies else float("nan"),
        "frames": float(len(outputs)),
    }
