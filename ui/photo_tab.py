"""The photo & clip tab: swap faces in an uploaded photo or clip, with progress, cancel and the detector panel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.errors import InputError
from pipelines.service import (
    ClipOutcome,
    PhotoOutcome,
    check_media,
    swap_photo,
    swap_video,
)
from pipelines.swap_engines import SourceIdentity
from pipelines.types import SwapSettings
from pipelines.video import is_video_path
from pipelines.viewer import ViewerState
from ui.context import UiContext, api_identity, swap_settings
from ui.errors import user_errors
from ui.spot_text import score_line, verdict_markdown


def photo_summary(outcome: PhotoOutcome) -> dict[str, Any]:
    verdict = outcome.verdict
    return {
        "faces_swapped": outcome.faces_swapped,
        "watermark": outcome.payload.describe(),
        "file": outcome.file.name,
        "detector": verdict.to_json() if verdict is not None else None,
    }


def clip_summary(outcome: ClipOutcome) -> dict[str, Any]:
    return {
        "frames": outcome.frames,
        "frames_with_swaps": outcome.frames_with_swaps,
        "faces_swapped": outcome.faces_swapped,
        "duration": round(outcome.duration, 3),
        "audio": outcome.audio,
        "watermark": outcome.payload.describe(),
        "file": outcome.file.name,
    }


def clip_explanation(result: dict[str, Any]) -> str:
    lines = [f"**Clip: the smoothed score peaked at {result['score'] * 100:.0f}%** (the heatmap shows its top frame)."]
    for face in result.get("faces", [])[:1]:
        lines.extend(f"- {sentence}" for sentence in face.get("explanations", []))
    if result.get("flicker") is not None:
        lines.append(f"- Texture flicker of the face against its surroundings: {result['flicker']:.2f}.")
    return "\n".join(lines)


def run_swap(
    ctx: UiContext,
    identity: SourceIdentity,
    target: Path,
    settings: SwapSettings,
    progress: gr.Progress,
    cancel: threading.Event | None,
) -> tuple[PhotoOutcome | None, ClipOutcome | None]:
    if is_video_path(target):

        def report(done: int, total: int | None) -> None:
            progress((done, total if total else done + 1), desc="Swapping frames", unit="frames")

        return None, swap_video(ctx.services, identity, target, settings, progress=report, cancel=cancel)
    return swap_photo(ctx.services, identity, target, settings), None


def build_photo_tab(ctx: UiContext, state: gr.State, options: list[gr.components.Component]) -> None:
    with gr.Tab("Photo & clip", id="photo-tab") as tab:
        gr.Markdown("2 · Upload a **target** photo or clip: the faces in it become the source face.")
        with gr.Row():
            with gr.Column(scale=2):
                target = gr.File(label="Target photo or clip", file_types=["image", "video"], elem_id="target")
                with gr.Row():
                    go = gr.Button("Swap faces", variant="primary", elem_id="swap-button")
                    stop = gr.Button("Cancel", variant="stop", elem_id="cancel-button")
                summary = gr.JSON(label="What was done", elem_id="swap-summary")
            with gr.Column(scale=3):
                out_image = gr.Image(label="Swapped photo", type="numpy", format="jpeg", interactive=False)
                out_video = gr.Video(label="Swapped clip", interactive=False)
                out_file = gr.File(label="Download (signed with Content Credentials)", interactive=False)
            with gr.Column(scale=2):
                gr.Markdown("### Spot: is it swapped?")
                score = gr.Markdown(score_line(None), elem_id="photo-spot-score")
                heatmap = gr.Image(label="Where the evidence is", type="numpy", interactive=False)
                why = gr.Markdown()

    @user_errors
    def swap_upload(path: str | None, current: ViewerState, *opts: Any, progress: gr.Progress = gr.Progress()) -> tuple:
        if current.identity is None:
            raise InputError("Choose a source face first (step 1).")
        if not path:
            raise InputError("Upload a target photo or clip first.")
        current.cancel = threading.Event()
        photo, clip = run_swap(ctx, current.identity, Path(path), swap_settings(*opts), progress, current.cancel)
        if photo is not None:
            return (
                gr.update(value=photo.image, visible=True),
                gr.update(value=None, visible=False),
                str(photo.file),
                photo_summary(photo),
                score_line(photo.verdict.score if photo.verdict else None),
                photo.overlay,
                verdict_markdown(photo.verdict),
            )
        assert clip is not None
        # The detector panel on the swapped clip: sampled frames, smoothed over time.
        checked = check_media(ctx.services, clip.file)
        summary = {
            **clip_summary(clip),
            "detector": {"score": checked.result["score"], "timeline": len(checked.result["timeline"])},
        }
        return (
            gr.update(value=None, visible=False),
            gr.update(value=str(clip.file), visible=True),
            str(clip.file),
            summary,
            score_line(float(checked.result["score"])),
            checked.overlay,
            clip_explanation(checked.result),
        )

    def cancel(current: ViewerState) -> str:
        if current.cancel is not None:
            current.cancel.set()
        return "Cancelling…"

    go.click(
        swap_upload,
        [target, state, *options],
        [out_image, out_video, out_file, summary, score, heatmap, why],
        api_visibility="private",
        concurrency_limit=2,
    )
    stop.click(cancel, [state], [score], api_visibility="private", queue=False)

    # API endpoints (gradio_client): the same actions, with the source passed explicitly.
    with tab:
        src = gr.File(visible=False)
        example = gr.Textbox(visible=False)
        consent = gr.Checkbox(visible=False)
        tgt = gr.File(visible=False)
        res_image = gr.Image(visible=False, type="numpy", format="jpeg")
        res_file = gr.File(visible=False)
        res_video = gr.Video(visible=False)
        res_json = gr.JSON(visible=False)
        hidden = gr.Button(visible=False)

    @user_errors
    def api_swap_image(
        source: str | None, example_name: str | None, agreed: bool, target_path: str | None, *opts: Any
    ) -> tuple:
        if not target_path or is_video_path(Path(target_path)):
            raise InputError("swap_image needs a target photo (use swap_video for clips).")
        identity = api_identity(ctx, source, example_name, agreed)
        outcome = swap_photo(ctx.services, identity, Path(target_path), swap_settings(*opts))
        return outcome.image, str(outcome.file), photo_summary(outcome)

    @user_errors
    def api_swap_video(
        source: str | None,
        example_name: str | None,
        agreed: bool,
        target_path: str | None,
        *opts: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        if not target_path or not is_video_path(Path(target_path)):
            raise InputError("swap_video needs a target clip (.mp4, .mov, .webm, .mkv or .avi).")
        identity = api_identity(ctx, source, example_name, agreed)
        _, clip = run_swap(ctx, identity, Path(target_path), swap_settings(*opts), progress, None)
        assert clip is not None
        return str(clip.file), clip_summary(clip)

    hidden.click(
        api_swap_image, [src, example, consent, tgt, *options], [res_image, res_file, res_json], api_name="swap_image"
    )
    hidden.click(api_swap_video, [src, example, consent, tgt, *options], [res_video, res_json], api_name="swap_video")
