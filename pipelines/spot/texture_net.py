"""The learned texture signal: a small CNN over the face's analysis frame, run with onnxruntime.

The net sees `FaceSignals.crop`: the whole aligned analysis frame (the 128-unit swap square plus its
32-unit margin) at 128 x 128 pixels, RGB plus a map of the finest detail's local strength. It was trained
(`python -m pipelines.spot.train_texture`, PyTorch, CPU) on real faces and blends made from them only, and
returns one log-odds number, used as the signal `learned_texture` by the logistic model. No torch here:
only onnxruntime, already a runtime dependency.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

TEXTURE_NET_PATH = Path(__file__).resolve().parent / "weights" / "spot_texture.onnx"
INPUT_NAME = "crop"
"""The ONNX input: (N, 4, CROP_SIZE, CROP_SIZE) float32, the uint8 crop scaled to 0..1 (see `to_input`)."""


def to_input(crops: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, H, W, 4) uint8 crops -> (N, 4, H, W) float32 in 0..1, the net's input layout."""
    batch = np.asarray(crops, np.float32).reshape(-1, *np.shape(crops)[-3:]) / 255.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


class TextureNet:
    """An onnxruntime session of the texture CNN; stateless after __init__, safe to share between threads."""

    def __init__(self, path: Path = TEXTURE_NET_PATH) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, crops: NDArray[np.uint8]) -> NDArray[np.float64]:
        """(N,) log-odds that each crop shows a blended face."""
        (out,) = self.session.run(None, {INPUT_NAME: to_input(crops)})
        return np.asarray(out, np.float64).reshape(-1)


@functools.lru_cache(maxsize=2)
def get_texture_net(path: Path = TEXTURE_NET_PATH) -> TextureNet | None:
    """The committed net, loaded once; None when the file is absent (the model then omits the signal)."""
    return TextureNet(path) if path.is_file() else None
