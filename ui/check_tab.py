"""The "Check any photo or clip" tab: the detector panel on its own, plus watermark and Content Credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from pipelines.errors import InputError
from pipelines.service import check_media
from pipelines.viewer import ViewerState
from ui.context import UiContext
from ui.errors import user_errors
from ui.spot_text import provenance_markdown, score_line


def timeline_frame(result: dict[str, Any]) -> pd.DataFrame | None:
    points = result.get("timeline") or []
    if not points:
        return None
    rows = []
    for p in points:
        x = p["time"] if p.get("time") is not None else p["frame"]
        rows.append({"time (s)": x, "score": p["score"], "series": "frame score"})
        rows.append({"time (s)": x, "score": p["smoothed"], "series": "smoothed"})
    return pd.DataFrame(rows)


def explanation(result: dict[str, Any]) -> str:
    faces = result.get("faces") or []
    lines = []
    for number, face in enumerate(faces, 1):
        lines.append(f"**Face {number}: {face['score'] * 100:.0f}% likely swapped**")
        lines.extend(f"- {s}" for s in face.get("explanations", []))
    if result.get("top_frames"):
        tops = ", ".join(f"frame {t['frame']} ({t['score']:.2f})" for t in result["top_frames"])
        lines.append(f"\nHighest-scoring frames: {tops}")
    return "\n".join(lines) or "_No face scored._"


def build_check_tab(ctx: UiContext, state: gr.State) -> None:
    with gr.Tab("Check any photo or clip", id="check-tab"):
        gr.Markdown(
            "Upload any photo or clip — made here or anywhere else. The detector scores every face and explains "
            "what it saw; the panel also reads this app's invisible watermark and any Content Credentials (C2PA)."
        )
        with gr.Row():
            with gr.Column(scale=2):
                media = gr.File(label="Photo or clip to check", file_types=["image", "video"], elem_id="check-media")
                go = gr.Button("Check it", variant="primary", elem_id="check-button")
                provenance = gr.Markdown(elem_id="check-provenance")
            with gr.Column(scale=3):
                score = gr.Markdown(score_line(None), elem_id="check-score")
                overlay = gr.Image(label="Where the evidence is", type="numpy", interactive=False)
                plot = gr.LinePlot(
                    x="time (s)", y="score", color="series", y_lim=[0, 1], label="Score over time", visible=False
                )
            with gr.Column(scale=2):
                why = gr.Markdown()
                details = gr.JSON(label="Details (same as `python -m pipelines.detect --json`)")

    @user_errors
    def check(path: str | None, current: ViewerState) -> tuple:
        if not path:
            raise InputError("Upload a photo or clip to check.")
        outcome = check_media(ctx.services, Path(path))
        result = outcome.result
        timeline = timeline_frame(result)
        return (
            score_line(float(result["score"])),
            outcome.overlay,
            gr.update(value=timeline, visible=timeline is not None),
            explanation(result),
            result,
            provenance_markdown(result),
        )

    go.click(check, [media, state], [score, overlay, plot, why, details, provenance], api_name="check_media")
