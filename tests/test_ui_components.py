"""The small Gradio component helpers the live view relies on."""

from __future__ import annotations

import base64

import cv2
import numpy as np
from gradio.data_classes import ImageData

from pipelines.image_io import load_image
from tests.app_server import ROOT
from tests.camera_file import moving_face_frames
from ui.components import fast_stream_input, in_memory_image


def astronaut() -> np.ndarray:
    return load_image(ROOT / "examples" / "astronaut.png")


def jpeg_data_url(rgb: np.ndarray) -> str:
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def test_streamed_webcam_frames_decode_to_the_same_pixels_as_gradio_and_odd_input_goes_to_gradio() -> None:
    import gradio as gr

    frame = moving_face_frames(astronaut(), 2)[0]
    webcam = gr.Image(sources=["webcam"], streaming=True, type="numpy")
    gradio_decode = webcam.preprocess
    fast_stream_input(webcam)
    payload = ImageData(url=jpeg_data_url(frame))
    ours, theirs = webcam.preprocess(payload), gradio_decode(payload)
    assert isinstance(ours, np.ndarray) and ours.shape == theirs.shape == frame.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 2  # two JPEG decoders, same picture
    # A PNG data URL (or a JPEG that does not decode) is left to Gradio's own path.
    _, png = cv2.imencode(".png", frame)
    png_url = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
    assert np.array_equal(webcam.preprocess(ImageData(url=png_url)), gradio_decode(ImageData(url=png_url)))
    assert webcam.preprocess(None) is None


def test_live_output_frames_go_out_inline_never_to_disk() -> None:
    frame = moving_face_frames(astronaut(), 2)[0]
    value = in_memory_image(format="jpeg").postprocess(frame)
    assert value is not None and value.path is None and value.url is not None
    assert value.url.startswith("data:image/jpeg;base64,")


def test_a_mirrored_stream_is_flipped_on_the_server() -> None:
    import gradio as gr

    frame = moving_face_frames(astronaut(), 2)[0]
    payload = ImageData(url=jpeg_data_url(frame))
    plain = fast_stream_input(gr.Image(sources=["webcam"], streaming=True, type="numpy")).preprocess(payload)
    mirrored = fast_stream_input(gr.Image(sources=["webcam"], streaming=True, type="numpy"), mirror=True)
    assert np.array_equal(mirrored.preprocess(payload), plain[:, ::-1])
