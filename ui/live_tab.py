"""The live tab: webcam in, swapped stream out, the detector panel beside it, live numbers below."""

from __future__ import annotations

import functools
import json
from typing import Any

import gradio as gr

from pipelines.errors import ModelError
from pipelines.image_io import to_rgb
from pipelines.live import LiveModels, LiveResult
from pipelines.outputs import mark_frame
from pipelines.types import Face, ImageRGB, SwapSettings
from pipelines.viewer import ViewerState
from ui.components import fast_stream_input, in_memory_image
from ui.context import UiContext, swap_settings
from ui.errors import user_errors
from ui.spot_text import score_line

STREAM_EVERY_S = 1 / 17  # the browser offers a frame every 59 ms; the server keeps only the newest
# (measured on 2 cores with Chromium beside the app, int8 swapper, 3 runs each: 1/18 s gave 14.7-17.0 displayed
# fps and 0.90-1.03 swaps/s, 1/17 s 16.5-16.9 fps and 1.13-1.19 swaps/s, 1/16 s 15.7 fps and 1.20-1.22 swaps/s.
# An offer that comes before the previous frame is back is skipped, so offering too often loses frames and
# makes the browser encode frames that are then dropped, which steals the CPU the display and the swap need)
STREAM_TIME_LIMIT_S = 600  # after this the browser re-joins the queue by itself (state survives)
LIVE_CONCURRENCY = 4  # live viewers served at once
TEXT_EVERY = 15  # the live numbers are refreshed on every 15th frame (about once a second)
LIVE_DET_SIZE = 320  # detector input side for the live view: webcam faces are large (dynamic-size models)


def live_models(ctx: UiContext, state: ViewerState, engine_name: str) -> LiveModels:
    services = ctx.services
    analyzer = services.require_analyzer()
    engine = services.engine("classic" if engine_name == "classic" else "inswapper", live=True)
    state.prepare_live(engine)
    payload = state.payload_for_live()
    policy = services.policy

    def post_process(frame: ImageRGB, faces: list[Face]) -> ImageRGB:
        return mark_frame(frame, faces, payload, policy)

    spotter = services.spotter
    score = (lambda frame, faces: spotter.score_image(frame, faces)) if spotter is not None else None
    detect = functools.partial(analyzer.detect, det_size=LIVE_DET_SIZE)
    return LiveModels(detect=detect, engine=engine, post_process=post_process, score=score)


def run_live(
    ctx: UiContext, frame: Any, state: ViewerState, settings: SwapSettings, streaming: bool = True
) -> LiveResult | str:
    """One live frame; a string says why nothing could be done (no models)."""
    try:
        models = live_models(ctx, state, settings.engine)
    except ModelError as error:
        return str(error)
    return state.live.process(to_rgb(frame), models, settings, streaming=streaming)


def build_live_tab(ctx: UiContext, state: gr.State, options: list[gr.components.Component]) -> None:
    with gr.Tab("Live", id="live-tab"):
        with gr.Row():
            with gr.Column(scale=3):
                webcam = fast_stream_input(
                    gr.Image(
                        label="Your camera",
                        sources=["webcam"],
                        streaming=True,
                        type="numpy",
                        elem_id="webcam",
                        webcam_options=gr.WebcamOptions(
                            mirror=False,  # mirrored on the server and by CSS: see MIRROR_CSS
                            constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}},
                        ),
                    ),
                    mirror=True,
                )
            with gr.Column(scale=3):
                swapped = in_memory_image(label="Swapped (labelled AI-generated)", format="jpeg", elem_id="swapped")
            with gr.Column(scale=2):
                gr.Markdown("### Spot: is it swapped?")
                score = gr.Markdown(score_line(None), elem_id="spot-score")
                stats = gr.Markdown("Start the camera to see live numbers.", elem_id="live-stats")
                gr.Markdown(
                    "<small>On a CPU the neural swap takes about a second per face: the face you see is the latest "
                    "swap, re-warped onto where your face is now (mode *decoupled*). With the classic engine or a "
                    "GPU every frame is swapped (mode *direct*).</small>"
                )

        # The stream's outputs are hidden relays; the browser copies each new value to its visible twin. Gradio
        # marks every output of an event "pending" on each live frame, and the status tracker of a shown
        # component then redraws its timer on every animation frame until the answer comes: with the three shown
        # outputs as the stream's own, that kept the page rendering about 40 times a second. A copy made in the
        # browser (an event with no server function) has no loading status. Hidden components have no tracker.
        frame_relay = in_memory_image(format="jpeg", visible=False)
        score_relay = gr.Markdown(visible=False)
        stats_relay = gr.Markdown(visible=False)
        for relay, shown in ((frame_relay, swapped), (score_relay, score), (stats_relay, stats)):
            relay.change(None, [relay], [shown], js="(value) => value", show_progress="hidden")

        def live_frame(frame: Any, current: ViewerState, *opts: Any) -> tuple[Any, Any, Any]:
            if frame is None:
                return None, score_line(None), "Waiting for the camera…"
            result = run_live(ctx, frame, current, swap_settings(*opts))
            if isinstance(result, str):
                return frame, score_line(None), result
            # Texts change the page only when they change (every re-render costs the browser CPU).
            score = score_line(getattr(current.live.last_verdict, "score", None))
            text = result.stats.as_text() + (f"\n\n{result.stats.message}" if result.stats.message else "")
            if current.live.frames_seen % TEXT_EVERY and not result.stats.message:
                text = current.shown_stats or text
            new_score = gr.skip() if score == current.shown_score else score
            new_text = gr.skip() if text == current.shown_stats else text
            current.shown_score, current.shown_stats = score, text
            return result.frame, new_score, new_text

        webcam.stream(
            live_frame,
            [webcam, state, *options],
            [frame_relay, score_relay, stats_relay],
            stream_every=STREAM_EVERY_S,
            time_limit=STREAM_TIME_LIMIT_S,
            concurrency_limit=LIVE_CONCURRENCY,
            show_progress="hidden",
            api_visibility="private",
        )

        # The same per-frame path as an API endpoint (stream events cannot be called from gradio_client).
        api_frame = gr.Image(type="numpy", visible=False)
        api_out = gr.Image(type="numpy", visible=False, format="jpeg")
        api_json = gr.JSON(visible=False)

        @user_errors
        def swap_frame(frame: Any, current: ViewerState, *opts: Any) -> tuple[Any, dict[str, Any]]:
            if frame is None:
                raise ModelError("Send an image.")
            result = run_live(ctx, frame, current, swap_settings(*opts), streaming=False)
            if isinstance(result, str):
                raise ModelError(result)
            verdict = current.live.last_verdict
            detail = {
                "mode": result.stats.mode,
                "faces": result.stats.faces,
                "message": result.stats.message,
                "source": current.source_label,
                "stats": json.loads(json.dumps(result.stats.__dict__)),
                "detector": verdict.to_json() if verdict is not None else None,
            }
            return result.frame, detail

        gr.Button(visible=False).click(
            swap_frame, [api_frame, state, *options], [api_out, api_json], api_name="swap_frame", concurrency_limit=4
        )
