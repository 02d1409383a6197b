"""The one thin layer that talks to onnxruntime: create sessions, warm them up, run them.

Sessions are created once per model file and shared read-only between users and threads
(`InferenceSession.run` is thread-safe). Nothing here keeps per-user or per-frame state.
"""

from __future__ import annotations

import contextlib
import functools
import os
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


@functools.cache
def preload_gpu_libraries() -> None:
    """onnxruntime-gpu installed with its pip CUDA/cuDNN packages (`onnxruntime-gpu[cuda,cudnn]`) finds
    those libraries only once they are preloaded; a no-op without a GPU build or without those packages."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None or "CUDAExecutionProvider" not in available_providers():
        return
    with contextlib.suppress(Exception):  # a system-wide CUDA install is then used as before
        preload()


TENSORRT_ENV = "SWAPSPOT_TENSORRT"  # set to 1 to try TensorRT first on NVIDIA GPUs (engines are cached)


def choose_providers(preferred: tuple[str, ...]) -> list[str | tuple[str, dict[str, str]]]:
    """Keep the preferred providers this onnxruntime build has, always ending with the CPU.

    On NVIDIA GPUs, SWAPSPOT_TENSORRT=1 puts TensorRT first, with its engine cache beside the models.
    """
    have = set(available_providers())
    chosen: list[str | tuple[str, dict[str, str]]] = []
    if os.environ.get(TENSORRT_ENV) == "1" and "TensorrtExecutionProvider" in have:
        from models.store import model_root

        cache = model_root() / "tensorrt-cache"
        cache.mkdir(parents=True, exist_ok=True)
        options = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache), "trt_fp16_enable": "False"}
        chosen.append(("TensorrtExecutionProvider", options))
    chosen += [p for p in preferred if p in have and p != "CPUExecutionProvider"]
    return [*chosen, "CPUExecutionProvider"]


def session_device(session: ort.InferenceSession) -> str:
    """ "cuda" when the session runs on an NVIDIA GPU, else "cpu"."""
    providers = session.get_providers()
    return "cuda" if providers and providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"


def create_session(
    path: Path | str | bytes, settings: RuntimeSettings | None = None, name: str = ""
) -> ort.InferenceSession:
    """Load an ONNX file (or a serialised model, named `name` in messages) into an inference session, or raise
    `ModelError` saying why it failed."""
    settings = settings or RuntimeSettings()
    preload_gpu_libraries()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if settings.intra_op_threads > 0:
        options.intra_op_num_threads = settings.intra_op_threads
    if not settings.spin_wait:
        # Idle onnxruntime threads sleep instead of spinning: on a small machine shared with a browser and
        # other sessions, spinning threads burn the CPU the others need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        model = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(model, sess_options=options, providers=choose_providers(settings.providers))
    except Exception as error:  # onnxruntime raises several unrelated exception types
        label = name or ("a serialised model" if isinstance(path, bytes) else str(path))
        raise ModelError(f"The model file {label} could not be loaded by onnxruntime: {error}") from error


def _spec(arg: ort.NodeArg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ONNX_TO_NUMPY.get(arg.type, np.float32))


def input_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_inputs()]


def output_specs(session: ort.InferenceSession) -> list[TensorSpec]:
    return [_spec(arg) for arg in session.get_outputs()]


def run(
    session: ort.InferenceSession, feeds: dict[str, np.ndarray], run_options: ort.RunOptions | None = None
) -> list[np.ndarray]:
    """Run a session on named inputs and return all outputs in graph order.

    On a GPU the inputs are bound once and the outputs stay on the device until they are read back in one
    copy each (IO binding), instead of onnxruntime's default extra staging copies. `run_options`: setting
    its `terminate` from another thread makes a long run stop early (it then raises).
    """
    if session_device(session) == "cuda":
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for output in session.get_outputs():
            binding.bind_output(output.name, "cuda")
        session.run_with_iobinding(binding, run_options)
        return [np.asarray(out) for out in binding.copy_outputs_to_cpu()]
    return [np.asarray(out) for out in session.run(None, feeds, run_options)]


def warm_up(session: ort.InferenceSession, dynamic_size: int = 64) -> None:
    """Run once on zeros so the first real call does not pay for allocation and kernel selection."""
    feeds: dict[str, np.ndarray] = {}
    for spec in input_specs(session):
        shape = tuple(d if d is not None else (1 if i == 0 else dynamic_size) for i, d in enumerate(spec.shape))
        feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
    run(session, feeds)
