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


def _decode_jpeg_data_url(url: str) -> np.ndarray | None:
    """RGB pixels of a `data:image/jpeg;base64,...` URL, or None when it is not one that decodes."""
    head, _, body = url.partition(",")
    if not head.startswith("data:image/jpeg;base64"):
        return None
    try:
        data = base64.b64decode(body)
    except ValueError:
        return None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if decoded is None else np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), np.uint8)


def fast_stream_input(image: gr.Image, mirror: bool = False) -> gr.Image:
    """Decode a streaming webcam's JPEG frames with OpenCV, straight from the data URL the browser sends.

    Gradio's own path goes through PIL and an EXIF check per frame (a canvas capture has no EXIF), which
    costs the live view about twice the decode itself. Anything else goes to Gradio's `preprocess`.
    `mirror=True` flips every frame left to right here (see `MIRROR_CSS`).
    """
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        url = getattr(payload, "url", None)
        decoded = _decode_jpeg_data_url(url) if isinstance(url, str) else None
        pixels: Any = decoded if decoded is not None else original(payload)
        if mirror and isinstance(pixels, np.ndarray) and pixels.ndim >= 2:
            pixels = np.asarray(cv2.flip(pixels, 1))  # 0.04 ms; a reversed numpy copy takes 1.4 ms
        return pixels

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


MIRROR_CSS = "#webcam video { transform: scaleX(-1); }"
"""The live camera preview shown as a mirror. Gradio's own `mirror=True` does this too, but it also flips the
pixels in the browser with a second full-frame canvas draw per frame; the server flips them instead
(`fast_stream_input(mirror=True)`), a fraction of a millisecond, and the browser keeps that CPU for the page."""


def in_memory_image(**kwargs: Any) -> gr.Image:
    """An output image sent to the browser inline (a JPEG data URL), never written to the server's disk.

    Used for the live stream: a plain `gr.Image` saves every output frame into Gradio's cache folder.
    (The instance's `postprocess` is replaced rather than subclassing, because Gradio writes a stub
    file next to the module of every component subclass.)
    """
    image = gr.Image(**kwargs)
    image.postprocess = _inline_jpeg  # type: ignore[method-assign]
    return image
