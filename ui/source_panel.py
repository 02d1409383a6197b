"""Choosing the source face: an example, an uploaded photo (with consent), or a webcam snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.errors import InputError
from pipelines.image_io import to_rgb
from pipelines.service import identity_from_file, identity_from_image
from pipelines.viewer import ViewerState
from ui.context import CONSENT_LABEL, NO_CONSENT, UiContext, api_identity, example_faces
from ui.errors import user_errors


def source_status(state: ViewerState) -> str:
    if state.identity is None:
        return "**Source face:** none chosen yet — pick an example, upload a photo or take a snapshot."
    origin = {"example": "example", "upload": "uploaded photo", "snapshot": "webcam snapshot"}
    return f"**Source face:** {state.source_label} ({origin.get(state.source_kind or '', '')}) ✔"


def forget_upload(path: str | None) -> None:
    """Uploaded faces are not kept: the temporary upload is deleted once it has been read."""
    if path:
        Path(path).unlink(missing_ok=True)


def build_source_panel(ctx: UiContext, state: gr.State) -> gr.Markdown:
    examples = example_faces()
    with gr.Accordion("1 · Choose the source face (who you will become)", open=True, elem_id="source-panel"):
        with gr.Row():
            gallery = gr.Gallery(
                [str(p) for p in examples],
                label="Example faces (public domain)",
                columns=4,
                height=160,
                allow_preview=False,
                elem_id="source-examples",
            )
            with gr.Column():
                upload = gr.Image(label="…or upload a photo", type="filepath", sources=["upload"], height=160)
                with gr.Row():
                    consent = gr.Checkbox(label=CONSENT_LABEL, value=False, elem_id="consent", scale=3)
                    face_number = gr.Number(
                        value=1, precision=0, minimum=1, label="Face no. (1 = largest)", scale=1, min_width=80
                    )
                use_upload = gr.Button("Use this photo", size="sm")
            with gr.Column():
                snapshot = gr.Image(
                    label="…or take a snapshot of yourself",
                    sources=["webcam"],
                    type="numpy",
                    height=160,
                    webcam_options=gr.WebcamOptions(mirror=True),
                )
                use_snapshot = gr.Button("Use my snapshot", size="sm")
        status = gr.Markdown(elem_id="source-status")

    @user_errors
    def choose_example(current: ViewerState, evt: gr.SelectData) -> tuple[ViewerState, str]:
        path = examples[int(evt.index)]
        current.set_source(identity_from_file(ctx.services, path), path.stem, "example")
        return current, source_status(current)

    @user_errors
    def choose_upload(
        path: str | None, agreed: bool, number: float | None, current: ViewerState
    ) -> tuple[ViewerState, str, Any]:
        try:
            if not path:
                raise InputError("Upload a photo first.")
            if not agreed:
                raise InputError(NO_CONSENT)
            index = max(int(number or 1), 1) - 1
            current.set_source(identity_from_file(ctx.services, Path(path), index), "your photo", "upload")
        finally:
            forget_upload(path)
        return current, source_status(current), None

    @user_errors
    def choose_snapshot(frame: Any, current: ViewerState) -> tuple[ViewerState, str, Any]:
        if frame is None:
            raise InputError("Take a snapshot with the camera first.")
        current.set_source(identity_from_image(ctx.services, to_rgb(frame), "snapshot"), "your snapshot", "snapshot")
        return current, source_status(current), None

    # API: choose this session's source (an example by name, or a photo with consent), as the page does.
    api_source = gr.File(visible=False)
    api_example = gr.Textbox(visible=False)
    api_consent = gr.Checkbox(visible=False)

    @user_errors
    def choose_source_api(path: str | None, example: str | None, agreed: bool, current: ViewerState) -> tuple:
        identity = api_identity(ctx, path, example, agreed)
        current.set_source(identity, example or "your photo", "example" if example else "upload")
        return current, source_status(current)

    gr.Button(visible=False).click(
        choose_source_api, [api_source, api_example, api_consent, state], [state, status], api_name="choose_source"
    )
    gallery.select(choose_example, [state], [state, status], api_visibility="private")
    use_upload.click(
        choose_upload, [upload, consent, face_number, state], [state, status, upload], api_visibility="private"
    )
    use_snapshot.click(choose_snapshot, [snapshot, state], [state, status, snapshot], api_visibility="private")
    return status
