"""The page: header, source choice, options, tabs. Each tab lives in its own small module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.loading import ModelOverrides, Precision, gpu_available
from pipelines.service import AppServices, identity_from_file
from pipelines.startup import ModelReport
from pipelines.viewer import ViewerState
from ui.check_tab import build_check_tab
from ui.classroom import build_classroom
from ui.components import MIRROR_CSS
from ui.context import UiContext
from ui.live_tab import build_live_tab
from ui.photo_tab import build_photo_tab
from ui.source_panel import build_source_panel, source_status

CSS = (
    """
#swapspot-header h1 { margin-bottom: 0.2em; }
#spot-score, #photo-spot-score, #check-score { font-size: 1.25em; font-weight: 600; }
/* A player who opened the ?play=CODE link on a phone sees only the game. */
body.swapspot-play #swapspot-header, body.swapspot-play #missing-models-banner, body.swapspot-play #source-panel,
body.swapspot-play #swap-options, body.swapspot-play [role="tablist"], body.swapspot-play footer {
  display: none !important;
}
"""
    + MIRROR_CSS
)

WEBCAM_JPEG_QUALITY = 0.75
"""Quality of the JPEG frames the browser sends while streaming the webcam. Gradio's webcam code asks the
canvas for a JPEG without a quality, which means 0.92: 79 kB a 640x480 frame of the test camera, 1.4 MB/s at
18 frames a second. 0.75 makes that 45 kB (less to send over a home upload link, and less to pass between the
browser's processes and decode on the server); the swap works on a 128 px face, far below what it loses."""

PAGE_JS = """
() => {
  if (new URLSearchParams(window.location.search).has("play")) document.body.classList.add("swapspot-play");
  // Streaming webcam frames: JPEG at WEBCAM_JPEG_QUALITY instead of the canvas default (see ui/page.py).
  const toDataURL = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (type, quality) {
    if (type === "image/jpeg" && quality === undefined) quality = __QUALITY__;
    return toDataURL.call(this, type, quality);
  };
}
""".replace("__QUALITY__", str(WEBCAM_JPEG_QUALITY))

INTRO = """
# Swap & Spot
**Make a face swap, then catch it.** The app swaps faces (the *attack*); right beside it a detector scores the
result and shows *why* it looks swapped (the *defence*). Everything it makes is labelled *AI-generated*, carries
an invisible watermark, and its downloads carry signed Content Credentials. Use only your own face, or a face
you have permission to use.
"""

STATE_TTL_S = 2 * 60 * 60  # a tab's state (its source face) is dropped at the latest 2 hours after it closes


@dataclass(frozen=True)
class AppConfig:
    """Choices made by whoever started the app (never changeable from the page)."""

    overrides: ModelOverrides
    report: ModelReport
    source: Path | None = None
    engine: str | None = None
    precision: Precision = "auto"


def launch_options() -> dict[str, Any]:
    # No server-side rendering: it starts a Node.js process per app that a single-machine classroom
    # deployment does not need, and it competes with the live stream for the CPU.
    return {"css": CSS, "js": PAGE_JS, "theme": gr.themes.Soft(), "show_error": False, "ssr_mode": False}


def build_models_tab(report: ModelReport, swapper_text: Callable[[], str]) -> gr.Markdown:
    with gr.Tab("Models", id="models-tab"):
        gr.Markdown(
            "### Models in use\nInsightFace models (detector, recognizer, landmarks, inswapper) are for "
            "**non-commercial research use only**. Files from the registry are checked against their published "
            "SHA-256 before loading; files chosen by whoever runs the app are marked *unverified*."
        )
        gr.Markdown(report.as_markdown(), elem_id="model-status")
        swapper_status = gr.Markdown(elem_id="swapper-status")
        gr.Button("Refresh", size="sm").click(swapper_text, None, swapper_status, api_visibility="private")
    return swapper_status


def swapper_line(services: AppServices) -> str:
    _, status = services.swapper_prep.current()
    device = "NVIDIA GPU (CUDA)" if gpu_available() else "CPU"
    return f"**Swapper:** {status}. **Runs on:** {device}."


def initial_state(services: AppServices, source: Path | None) -> ViewerState:
    state = ViewerState()
    if source is not None and services.analyzer is not None:
        # Chosen by whoever runs the app (kiosk, classroom): treated like an example.
        state.set_source(identity_from_file(services, source), source.stem, "example")
    return state


def build_page(config: AppConfig) -> gr.Blocks:
    services = AppServices.create(config.report, config.overrides, config.precision)
    engines = services.engines()
    default_engine = config.engine or (engines[0] if engines else "classic")
    ctx = UiContext(services)
    start_state = initial_state(services, config.source)
    with gr.Blocks(title="Swap & Spot", delete_cache=(300, 900)) as demo:
        gr.Markdown(INTRO, elem_id="swapspot-header")
        if config.report.missing(include_optional=False):
            gr.Markdown(
                "⚠️ **Some models are missing**: "
                + ", ".join(config.report.missing(include_optional=False))
                + ". Parts of the app are disabled until they are installed; the *Models* tab says how.",
                elem_id="missing-models-banner",
            )
        state = gr.State(start_state, time_to_live=STATE_TTL_S, delete_callback=ViewerState.close)
        status = build_source_panel(ctx, state)
        with gr.Row(elem_id="swap-options"):
            engine = gr.Radio(
                [("Neural (inswapper)", "inswapper"), ("Classic (warp and blend)", "classic")],
                value=default_engine,
                label="Swap engine",
                elem_id="engine",
            )
            faces = gr.Radio([("All faces", "all"), ("Largest face", "largest")], value="all", label="Which faces")
            mouth = gr.Checkbox(label="Keep the target's mouth", value=False)
            colour = gr.Checkbox(label="Colour correction", value=True)
        options: list[gr.components.Component] = [engine, faces, mouth, colour]
        with gr.Tabs():
            build_live_tab(ctx, state, options)
            build_photo_tab(ctx, state, options)
            build_check_tab(ctx, state)
            build_classroom(ctx)
            swapper_status = build_models_tab(config.report, lambda: swapper_line(services))
        demo.load(source_status, [state], [status], api_visibility="private")
        demo.load(lambda: swapper_line(services), None, swapper_status, api_visibility="private")
    return demo
