"""The defence side ("spot"): is a face swapped, how sure, and why.

Public API (for the app and the CLI):
- `Spotter`: loads the committed weights once; `score_face(image, face) -> FaceVerdict`,
  `score_image(image, faces) -> ImageVerdict`. Thread-safe, no per-user state.
- `render_overlay(image, verdict) -> ImageRGB`: heatmaps, boxes and scores drawn on the photo.
- `SpotHistory`: one per viewer for clips and live video (smoothed score, flicker, timeline, top frames);
  `render_timeline(history) -> ImageRGB` plots it.
"""

from pipelines.spot.explain import render_overlay, signal_sentence
from pipelines.spot.spotter import THRESHOLD, FaceVerdict, ImageVerdict, Spotter
from pipelines.spot.video import SpotHistory, render_timeline

__all__ = [
    "THRESHOLD",
    "FaceVerdict",
    "ImageVerdict",
    "SpotHistory",
    "Spotter",
    "render_overlay",
    "render_timeline",
    "signal_sentence",
]
