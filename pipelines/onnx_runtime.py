"""The one thin layer that talks to onnxruntime: create sessions, warm them up, run them.

Sessions are created once per model file and shared read-only between users and threads
(`InferenceSession.run` is thread-safe). Nothing here keeps per-user or per-frame state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipelines.errors import ModelError
from pipelines.types import RuntimeSettings

_ONNX_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
}


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (None for dynamic dimensions) and numpy dtype of one model input or output."""

    name: str
    shape: tuple[int | None, ...]
    dtype: type


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def choose_providers(preferred: tuple[str, ...]) -> list[str]:
    """Keep the preferred providers this onnxruntime build has, always ending with the CPU."""
    have = set(available_providers())
    chosen = [p for p in preferred if p in have and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def create_session(path: Path | str, settings: RuntimeSettings | None = None) -> ort.InferenceSession:
    """Load an ONNX file into an inference session, or raise `ModelError` saying why it failed."""
    settings = settings or RuntimeSettings()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if settings.intra_op_threads > 0:
        options.intra_op_num_threads = settings.intra_op_threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=choose_providers(settings.providers))
    except Exception as error:  # onnxruntime raises several unrelated exception types
        raise ModelError(f"The model file {path} could not be loaded by onnxruntime: {error}") from error


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ONNX_TO_NUMPY.get(arg.type, np.float32))


def input_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_inputs()]


def output_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_outputs()]


def run(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a session on named inputs and return all outputs in graph order."""
    return [np.asarray(out) for out in session.run(None, feeds)]


def warm_up(session: ort.InferenceSession, dynamic_size: int = 64) -> None:
    """Run once on zeros so the first real call does not pay for allocation and kernel selection."""
    feeds: dict[str, np.ndarray] = {}
    for spec in input_specs(session):
        shape = tuple(d if d is not None else (1 if i == 0 else dynamic_size) for i, d in enumerate(spec.shape))
        feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
    run(session, feeds)
