"""The page: header, tabs, and the model status. Each tab lives in its own small module."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.loading import ModelOverrides
from pipelines.startup import ModelReport

CSS = """
#swapspot-header h1 { margin-bottom: 0.2em; }
.swapspot-note { font-size: 0.95em; opacity: 0.85; }
"""

INTRO = """
# Swap & Spot
**Make a face swap, then catch it.** On the left the app swaps faces (the *attack*); on the right a detector
scores the result and shows *why* it looks swapped (the *defence*). Everything it outputs is labelled as
AI-generated. Use only your own face, or a face you have permission to use.
"""


@dataclass(frozen=True)
class AppConfig:
    """Choices made by whoever started the app (never changeable from the page)."""

    overrides: ModelOverrides
    report: ModelReport
    source: Path | None = None
    engine: str | None = None


def launch_options() -> dict[str, Any]:
    return {"css": CSS, "theme": gr.themes.Soft(), "show_error": False}


def build_models_tab(config: AppConfig) -> None:
    with gr.Tab("Models", id="models-tab"):
        gr.Markdown(
            "### Models in use\nInsightFace models (detector, recognizer, landmarks, inswapper) are for "
            "**non-commercial research use only**. Files from the registry are checked against their published "
            "SHA-256 before loading; files chosen by whoever runs the app are marked *unverified*."
        )
        gr.Markdown(config.report.as_markdown(), elem_id="model-status")


def build_page(config: AppConfig) -> gr.Blocks:
    with gr.Blocks(title="Swap & Spot", delete_cache=(300, 900)) as demo:
        gr.Markdown(INTRO, elem_id="swapspot-header")
        if config.report.missing():
            gr.Markdown(
                "⚠️ **Some models are missing**: "
                + ", ".join(config.report.missing())
                + ". Parts of the app are disabled until they are installed; the *Models* tab says how.",
                elem_id="missing-models-banner",
            )
        with gr.Tabs():
            build_models_tab(config)
    return demo
