"""A faster fp32 inswapper for CPUs: its 3x3 convolutions in Winograd form, made once and checked.

1. `pipelines.winograd.winograd_model` rewrites the original's 3x3 convolutions (the same linear map).
2. The result is saved beside the original as `<name>.winograd.onnx`, its weights in
   `<name>.winograd.onnx.data`: about 2.0 GB for inswapper_128 (554 MB). Free disk space is checked first.
3. Check against the original on a few inputs (the example faces, resized to 128 px, with random unit
   latents): the largest difference of any output value must stay below MAX_ABS_DIFF (0.25 of a grey
   level). Float rounding gives about 3e-6; anything near the limit means a broken rewrite. It must also be
   clearly faster on this CPU, measured on one thread as the live view's swap worker runs it.
4. A JSON report beside the original, keyed by the original's size and modification time and the recipe,
   says whether the file is used and why, so the work (about half a minute) happens once.

Only for onnxruntime's CPU provider: GPU libraries pick their own convolution algorithms.
`SWAPSPOT_WINOGRAD=0` switches it off (the original then runs as it is), and the int8 swapper's Winograd form
too (`pipelines.quantize` then makes the plain int8 form).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines import onnx_runtime
from pipelines.errors import ModelError
from pipelines.types import ImageRGB, RuntimeSettings

WINOGRAD_SUFFIX = ".winograd.onnx"
REPORT_SUFFIX = ".winograd.json"
WINOGRAD_ENV = "SWAPSPOT_WINOGRAD"  # 0 switches the Winograd form off
MAX_ABS_DIFF = 1e-3  # outputs are in [0, 1]: 0.26 of a grey level
MIN_SPEEDUP = 1.2
GROWTH = 4.0  # transformed weights are at most 36/9 times the originals (F(4x4, 3x3))
RECIPE = "winograd-f4-160mib-v1"  # bump to invalidate cached files when the rewrite changes


@dataclass(frozen=True)
class WinogradReport:
    """Whether the Winograd form is used, and the measurements behind that decision."""

    source: str  # the original file
    path: str | None  # the Winograd file, when it was written
    passed: bool  # checked and faster: used for fp32 on the CPU
    reason: str  # one sentence for the console and the page
    max_abs_diff: float | None = None  # largest output difference against the original
    fp32_ms: float | None = None  # one forward on one thread
    winograd_ms: float | None = None
    layers: int = 0  # convolutions rewritten
    source_size: int = 0
    source_mtime_ns: int = 0
    recipe: str = RECIPE


def enabled() -> bool:
    return os.environ.get(WINOGRAD_ENV, "1").strip() != "0"


def winograd_paths(fp32: Path) -> tuple[Path, Path, Path]:
    """(model file, its weights file, report) beside `fp32`."""
    base = fp32.with_suffix("")
    model = base.with_name(base.name + WINOGRAD_SUFFIX)
    return model, model.with_name(model.name + ".data"), base.with_name(base.name + REPORT_SUFFIX)


def cached_winograd_report(fp32: Path) -> WinogradReport | None:
    """The stored report, if it belongs to this exact original file and recipe (and its files exist)."""
    model, data, report_path = winograd_paths(fp32)
    try:
        report = WinogradReport(**json.loads(report_path.read_text()))
        stat = fp32.stat()
    except (OSError, ValueError, TypeError):
        return None
    if report.source_size != stat.st_size or report.source_mtime_ns != stat.st_mtime_ns or report.recipe != RECIPE:
        return None
    if report.passed and not (model.is_file() and data.is_file()):
        return None
    return report


# 1-2. Rewrite and save ---------------------------------------------------------------------------------------


def write_winograd(fp32: Path, model_path: Path, sample: Sequence[np.ndarray] = ()) -> int:
    """Rewrite `fp32` into `model_path` (+ `.data`); returns how many convolutions were rewritten.

    With a `sample` input (arrays in input order), the convolutions' input shapes are measured in one run
    instead of inferred (some exporters compute the padding in ways shape inference cannot follow).
    """
    import onnx

    from pipelines.winograd import measured_shapes, winograd_model

    shapes = None
    if sample:
        try:
            shapes = measured_shapes(fp32, sample)
        except Exception:  # inference below is the fallback; a damaged file is reported there
            shapes = None
    try:
        rewritten, count = winograd_model(onnx.load(str(fp32)), in_place=True, shapes=shapes)
    except Exception as error:  # damaged or foreign files raise several unrelated types
        raise ModelError(f"{fp32.name} could not be rewritten in Winograd form: {error}") from error
    # Written under temporary names first, so an interrupted run never leaves a half file under the real name.
    data_name = model_path.name + ".data"
    staging = model_path.with_name(model_path.name + ".tmp")
    staging.mkdir(exist_ok=True)
    try:
        onnx.save(
            rewritten,
            str(staging / model_path.name),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
        )
        del rewritten
        (staging / data_name).replace(model_path.with_name(data_name))
        (staging / model_path.name).replace(model_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count


# 3. Check ------------------------------------------------------------------------------------------------


def check_inputs(photos: Sequence[ImageRGB], count: int = 2) -> list[tuple[NDArray[np.float32], NDArray[np.float32]]]:
    """(target blob, latent) pairs: the photos (or a smooth random image) at 128 px, random unit latents."""
    rng = np.random.default_rng(0)
    images = [np.asarray(cv2.resize(p, (128, 128), interpolation=cv2.INTER_AREA)) for p in photos[:count]]
    while len(images) < count:
        noise = rng.uniform(0, 255, (16, 16, 3)).astype(np.uint8)
        images.append(np.asarray(cv2.resize(noise, (128, 128), interpolation=cv2.INTER_CUBIC)))
    pairs = []
    for image in images:
        blob = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        latent = rng.standard_normal((1, 512)).astype(np.float32)
        pairs.append((blob, latent / np.linalg.norm(latent)))
    return pairs


def _forward_all(path: Path, inputs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], float]:
    """Outputs for every input and the best forward time in ms, on one thread (the live worker's setting)."""
    session = onnx_runtime.create_session(path, RuntimeSettings(intra_op_threads=1))
    names = [spec.name for spec in onnx_runtime.input_specs(session)]
    outputs, times = [], []
    for blob, latent in inputs:
        started = time.perf_counter()
        outputs.append(np.asarray(onnx_runtime.run(session, {names[0]: blob, names[1]: latent})[0]))
        times.append(time.perf_counter() - started)
    del session
    gc.collect()
    return outputs, min(times) * 1000.0


# 4. The whole procedure, cached -------------------------------------------------------------------------


def ensure_winograd_swapper(fp32: Path, photos: Sequence[ImageRGB] = ()) -> WinogradReport:
    """Make (once) and check the Winograd form of `fp32`; the report says whether to use it."""
    cached = cached_winograd_report(fp32)
    if cached is not None:
        return cached
    model_path, data_path, report_path = winograd_paths(fp32)
    stat = fp32.stat()

    def finish(report: WinogradReport) -> WinogradReport:
        report_path.write_text(json.dumps(asdict(report), indent=2))
        return report

    # 1. Room for it.
    needed = int(stat.st_size * GROWTH) + 256 * 2**20
    free = shutil.disk_usage(fp32.parent).free
    if free < needed:
        # Not cached: there may be room next time.
        return WinogradReport(
            str(fp32),
            None,
            False,
            f"fp32 swapper (its faster Winograd form needs {needed / 2**30:.1f} GB of free disk space beside it, "
            f"{free / 2**30:.1f} GB are free)",
        )
    # 2. Rewrite and save.
    inputs = check_inputs(photos)
    layers = write_winograd(fp32, model_path, inputs[0])
    base = WinogradReport(
        str(fp32), str(model_path), False, "", layers=layers, source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns
    )
    if layers == 0:
        model_path.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)
        return finish(replace(base, path=None, reason="fp32 swapper (no convolution suits the Winograd form)"))
    # 3. Check it against the original.
    reference, fp32_ms = _forward_all(fp32, inputs)
    candidate, winograd_ms = _forward_all(model_path, inputs)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(reference, candidate, strict=True))
    measured = replace(base, max_abs_diff=diff, fp32_ms=fp32_ms, winograd_ms=winograd_ms)
    if not diff <= MAX_ABS_DIFF:  # also catches NaN
        reason = f"fp32 swapper (its Winograd form differs from it by {diff:.2g}, more than {MAX_ABS_DIFF:g})"
        return finish(replace(measured, passed=False, reason=reason))
    if winograd_ms * MIN_SPEEDUP > fp32_ms:
        reason = f"fp32 swapper (its Winograd form is not faster on this CPU: {winograd_ms:.0f} vs {fp32_ms:.0f} ms)"
        return finish(replace(measured, passed=False, reason=reason))
    reason = f"fp32 swapper in Winograd form: {fp32_ms / winograd_ms:.1f}x faster, same output (within {diff:.0e})"
    return finish(replace(measured, passed=True, reason=reason))


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.fast_fp32 [--swapper PATH]`: prepare the Winograd form of the swapper now."""
    import argparse
    import sys

    from pipelines.errors import SwapSpotError
    from pipelines.loading import ModelOverrides, example_photos, fp32_swapper_for, resolve

    parser = argparse.ArgumentParser(prog="python -m pipelines.fast_fp32", description=main.__doc__)
    parser.add_argument("--swapper", type=Path, default=None, help="local swapper ONNX file (unverified)")
    args = parser.parse_args(argv)
    try:
        swapper = resolve("swapper", ModelOverrides(swapper=args.swapper)).path
        path, reason = fp32_swapper_for(swapper, build=True, photos=example_photos())
    except SwapSpotError as error:
        print(error, file=sys.stderr)
        return 2
    print(reason)
    report = cached_winograd_report(swapper)
    if report is not None:
        print(json.dumps(asdict(report), indent=2))
    return 0 if path is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
