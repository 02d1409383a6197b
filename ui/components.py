"""Gradio components with the behaviour this app needs."""

from __future__ import annotations

import base64
from typing import Any

import cv2
import gradio as gr
import numpy as np
from gradio.data_classes import ImageData

JPEG_QUALITY = 80
"""Live frames: quality 80 keeps faces crisp at about two thirds of the bytes of 90 (less to send and decode)."""


def _inline_jpeg(value: Any) -> ImageData | None:
    if value is None:
        return None
    array = np.asarray(value)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(array, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    return ImageData(url="data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii"))


def in_memory_image(**kwargs: Any) -> gr.Image:
    """An output image sent to the browser inline (a JPEG data URL), never written to the server's disk.

    Used for the live stream: a plain `gr.Image` saves every output frame into Gradio's cache folder.
    (The instance's `postprocess` is replaced rather than subclassing, because Gradio writes a stub
    file next to the module of every component subclass.)
    """
    image = gr.Image(**kwargs)
    image.postprocess = _inline_jpeg  # type: ignore[method-assign]
    return image
