"""The `inswapper` engine: InsightFace's inswapper_128 network, with our own ROI-only paste-back.

The network runs in OUR onnxruntime session (`pipelines.onnx_runtime.create_session`). The only other
thing the model file holds that the swap needs is `emap`, the 512x512 matrix that maps a recognizer
embedding to the network's source latent: it is the graph's last initializer (as InsightFace's
`INSwapper` reads it). InsightFace's full-frame `get(..., paste_back=True)` is not used: see
`pipelines.paste_back` for the equivalent that touches only the face's region.
"""

from __future__ import annotations

import functools
import mmap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from pipelines import onnx_runtime
from pipelines.errors import InputError, ModelError
from pipelines.face_align import norm_crop
from pipelines.paste_back import Patch, paste_back
from pipelines.swap_engines import PreparedSource, SourceIdentity
from pipelines.types import EngineName, Face, ImageRGB, RuntimeSettings, SwapSettings

CROP_SIZE = 128
"""inswapper_128 works on 128 px aligned faces."""


def read_emap(path: Path) -> NDArray[np.float32]:
    """The 512x512 `emap` of an inswapper file: its graph's last initializer.

    Read straight from the file's protobuf wire format through a memory map, skipping over the other
    initializers: a few milliseconds and no 554 MB copy of the model in memory (`onnx.load` would parse all
    of it just to reach the last tensor).
    """
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            graph = _last_field(data, 0, len(data), GRAPH_FIELD)
            if graph is None:
                raise ValueError("no graph")
            tensor = _last_field(data, graph[0], graph[1], INITIALIZER_FIELD)
            if tensor is None:
                raise ValueError("no initializers")
            proto = onnx.TensorProto.FromString(bytes(data[tensor[0] : tensor[1]]))
        emap = np.asarray(onnx.numpy_helper.to_array(proto), np.float32)
    except Exception as error:  # damaged or foreign files raise several unrelated types
        raise ModelError(f"{path.name} could not be read as an inswapper model: {error}") from error
    if emap.shape != (512, 512):
        raise ModelError(f"This is not an inswapper model: its last initializer has shape {emap.shape}.")
    return emap


GRAPH_FIELD = 7  # ModelProto.graph
INITIALIZER_FIELD = 5  # GraphProto.initializer (repeated)


def _varint(data: mmap.mmap, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("bad varint")


def _last_field(data: mmap.mmap, start: int, end: int, number: int) -> tuple[int, int] | None:
    """(start, end) of the last length-delimited field `number` in the message at data[start:end]."""
    found = None
    at = start
    while at < end:
        key, at = _varint(data, at)
        wire = key & 7
        if wire == 0:
            _, at = _varint(data, at)
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        elif wire == 2:
            length, at = _varint(data, at)
            if key >> 3 == number:
                found = (at, at + length)
            at += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if at != end:
        raise ValueError("truncated message")
    return found


class InswapperEngine:
    """Shared and read-only after construction: one instance serves every user and thread."""

    name: EngineName = "inswapper"
    needs_recognizer = True

    def __init__(self, session: ort.InferenceSession, emap: NDArray[np.float32]) -> None:
        self.session = session
        specs = onnx_runtime.input_specs(session)
        shapes = [tuple(spec.shape) for spec in specs]
        if len(shapes) != 2 or shapes[0][1:] != (3, CROP_SIZE, CROP_SIZE) or shapes[1][-1] != 512:
            raise ModelError(f"This model does not have the inswapper_128 inputs (got {shapes}).")
        self.target_input, self.source_input = specs[0].name, specs[1].name
        self.device = onnx_runtime.session_device(session)  # "cuda" or "cpu"
        emap = np.array(emap, np.float32)
        emap.setflags(write=False)
        self.emap: NDArray[np.float32] = emap

    @classmethod
    def from_path(
        cls, path: Path, runtime: RuntimeSettings | None = None, run_path: Path | None = None
    ) -> InswapperEngine:
        """Create the session and read the emap.

        `run_path`: a different file with the same network to run (the int8 version, which no longer
        carries `emap`); the emap is always read from `path`, the original.
        """
        session = onnx_runtime.create_session(run_path or path, runtime)
        try:
            return cls(session, read_emap(path))
        except ModelError as error:
            raise ModelError(f"{path.name}: {error}") from error

    def prepare_source(self, identity: SourceIdentity) -> PreparedSource:
        """latent = normalise(embedding @ emap), once per source."""
        if identity.embedding is None:
            raise InputError("The inswapper engine needs a face recognizer to read the source identity.")
        latent = np.asarray(identity.embedding, np.float32).reshape(1, -1) @ self.emap
        latent /= max(float(np.linalg.norm(latent)), 1e-12)
        latent.setflags(write=False)
        return PreparedSource(engine=self.name, latent=latent)

    def forward(
        self, crop: ImageRGB, latent: NDArray[np.float32], run_options: ort.RunOptions | None = None
    ) -> ImageRGB:
        """The network on one aligned 128 px RGB crop: returns the swapped 128 px RGB crop.

        `run_options.terminate = True` from another thread stops a running forward (it then raises)."""
        blob = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        feeds = {self.target_input: blob, self.source_input: np.ascontiguousarray(latent, dtype=np.float32)}
        pred = onnx_runtime.run(self.session, feeds, run_options)  # IO binding on GPUs
        return np.asarray(np.clip(255.0 * pred[0][0].transpose(1, 2, 0), 0, 255).astype(np.uint8), np.uint8)

    def swap(self, frame: ImageRGB, target: Face, source: PreparedSource, settings: SwapSettings) -> Patch | None:
        """1. align the target at 128 px -> 2. forward -> 3. paste back into the face's region only."""
        if source.latent is None:
            raise ValueError("this source was not prepared by the inswapper engine")
        # 1. Align (same geometry as insightface's norm_crop2 at 128 px).
        crop, to_crop = norm_crop(frame, target.kps, CROP_SIZE)
        # 2. The network.
        fake = self.forward(crop, source.latent)
        # 3. Paste back with the options.
        return paste_back(
            frame,
            fake,
            to_crop,
            colour_correction=settings.colour_correction,
            keep_mouth_of=target if settings.mouth_mask else None,
        )


@functools.lru_cache(maxsize=2)  # the live (1 thread) and the clip engine; older ones are let go
def load_inswapper_engine(path: Path, runtime: RuntimeSettings, run_path: Path | None = None) -> InswapperEngine:
    """The shared engine for this model file (created once per process; models are shared read-only)."""
    return InswapperEngine.from_path(path, runtime, run_path)
