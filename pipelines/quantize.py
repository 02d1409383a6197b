"""An int8 inswapper for CPUs, made on the user's machine and used only if it passes a quality check.

1. Calibration: aligned 128 px crops of the example faces (plus flipped and re-lit variants) and the
   latents of those faces (or random unit latents without a recognizer).
2. The recipe ("winograd" form): first each x2 upsampling + 3x3 convolution of the decoder becomes one 3x3
   convolution of the small map with 4x the outputs, exactly (`pipelines.upsample_conv`); then the widest 3x3
   convolutions become int8 Winograd (`pipelines.winograd_int8`): the 12 style-block convolutions and the
   first decoder layer F(4x4, 3x3) (4x fewer multiplications), the second decoder layer F(2x2, 3x3) (2.25x
   fewer); together 89% of the work. The 7x7 layer with 3 outputs becomes a float GEMM
   plus shifted sums (`pipelines.narrow_conv`), and onnxruntime's static QDQ quantization takes the remaining
   convolutions, with the activation ranges measured in the same float calibration run. The AdaIN linears,
   norms and activations stay in float. When a form fails its check, the next is made and checked: F(2x2)
   for all the wide layers ("winograd-f2"), then QDQ on every convolution ("plain", the only form with
   SWAPSPOT_WINOGRAD=0).
3. Quality check on the calibration faces, int8 against fp32: PSNR of the swapped crops, and when a
   recognizer is loaded, the cosine similarity of the two outputs' identity embeddings. Thresholds:
   PSNR >= 30 dB (an RMS difference of at most about 8 grey levels, below JPEG-q85 artefacts on a face) and
   identity similarity >= 0.9 (same-person pairs of ArcFace score far lower than that).
4. The result is cached beside the original as `<name>.int8.onnx` with a JSON report, keyed by the
   original's size and modification time, so the work happens once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray

from pipelines import onnx_runtime
from pipelines.face_align import norm_crop
from pipelines.face_analysis import FaceAnalyzer
from pipelines.types import ImageRGB, RuntimeSettings

if TYPE_CHECKING:
    from onnx import TensorProto

    from pipelines.winograd_int8 import Calibration

INT8_SUFFIX = ".int8.onnx"
REPORT_SUFFIX = ".int8.json"
MIN_PSNR_DB = 30.0
MIN_IDENTITY_SIMILARITY = 0.9
MIN_SPEEDUP = 1.2  # int8 must also be clearly faster (CPUs without fast int8 instructions may not gain)
RECIPE = "qdq-conv-perchannel-u8s8-v3+winograd-f4f2+upconv+nhwc"  # bump to invalidate cached int8 files on a change
PLAIN_RECIPE = "qdq-conv-perchannel-u8s8-v3"  # with SWAPSPOT_WINOGRAD=0
Form = Literal["winograd", "winograd-f2", "plain"]
FORMS: tuple[Form, ...] = ("winograd", "winograd-f2", "plain")
"""Tried in this order until one passes the check: F(4x4) for the widest layers and F(2x2) for the other
wide ones; F(2x2) for all of them; QDQ on every convolution."""
LARGEST_BLOCK = {"winograd": 4, "winograd-f2": 2, "plain": 0}
FORM_NAMES = {
    "winograd": "Winograd F(4x4) form",
    "winograd-f2": "Winograd F(2x2) form",
    "plain": "plain form",
}


def current_recipe() -> str:
    """The recipe a cached report must have been made with (the Winograd switch changes it)."""
    from pipelines.fast_fp32 import enabled

    return RECIPE if enabled() else PLAIN_RECIPE


@dataclass(frozen=True)
class QuantizationReport:
    """Whether the int8 swapper is used, and the measurements behind that decision."""

    source: str  # the fp32 file
    int8_path: str | None  # the int8 file, when it exists
    passed: bool  # quality check passed: the int8 file is used on CPU
    reason: str  # one sentence for the console and the Models tab
    psnr_db: float | None = None  # int8 vs fp32 output on the calibration faces (mean over faces)
    identity_similarity: float | None = None  # cosine of ArcFace embeddings of the two outputs (min over faces)
    fp32_ms: float | None = None  # median forward time per face
    int8_ms: float | None = None
    source_size: int = 0
    source_mtime_ns: int = 0
    recipe: str = RECIPE
    form: str = "plain"  # the form in the int8 file: "winograd", "winograd-f2" or "plain" (FORM_NAMES)
    fallback: str | None = None  # why the faster forms were not kept, when they were tried and failed

    @property
    def speedup(self) -> float | None:
        return self.fp32_ms / self.int8_ms if self.fp32_ms and self.int8_ms else None


def int8_paths(fp32: Path) -> tuple[Path, Path]:
    base = fp32.with_suffix("")
    return base.with_name(base.name + INT8_SUFFIX), base.with_name(base.name + REPORT_SUFFIX)


def cached_report(fp32: Path) -> QuantizationReport | None:
    """The stored report, if it belongs to this exact fp32 file and recipe."""
    int8, report_path = int8_paths(fp32)
    try:
        data = json.loads(report_path.read_text())
        report = QuantizationReport(**data)
    except (OSError, ValueError, TypeError):
        return None
    stat = fp32.stat()
    if (
        report.source_size != stat.st_size
        or report.source_mtime_ns != stat.st_mtime_ns
        or report.recipe != current_recipe()
    ):
        return None
    if report.passed and not int8.is_file():
        return None
    return report


# 1. Calibration data ----------------------------------------------------------------------------------------


def calibration_crops(photos: Sequence[ImageRGB], analyzer: FaceAnalyzer) -> list[ImageRGB]:
    """Aligned 128 px crops of every face in the photos, plus a mirrored and two re-lit variants of each."""
    crops: list[ImageRGB] = []
    for photo in photos:
        for face in analyzer.detect(photo):
            crop, _ = norm_crop(photo, face.kps, 128)
            crops.append(crop)
            crops.append(np.ascontiguousarray(crop[:, ::-1]))
            for gain in (0.75, 1.25):
                crops.append(np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    return crops


def calibration_latents(
    photos: Sequence[ImageRGB], analyzer: FaceAnalyzer, emap: NDArray[np.float32], count: int, seed: int = 0
) -> list[NDArray[np.float32]]:
    """Source latents: the example faces' identities when a recognizer is loaded, else random unit vectors."""
    vectors: list[NDArray[np.float32]] = []
    if analyzer.recognizer is not None:
        for photo in photos:
            vectors.extend(f.embedding for f in analyzer.analyze(photo) if f.embedding is not None)
    rng = np.random.default_rng(seed)
    while len(vectors) < count:
        vectors.append(rng.standard_normal(512).astype(np.float32))
    latents = []
    for vector in vectors[:count]:
        unit = vector / np.linalg.norm(vector)
        latent = (unit.reshape(1, -1) @ emap).astype(np.float32)
        latents.append(latent / np.linalg.norm(latent))
    return latents


def to_blob(crop: ImageRGB) -> NDArray[np.float32]:
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)


# 2. Quantization -------------------------------------------------------------------------------------------


class NothingToRewriteError(Exception):
    """The model has no layer the Winograd form would change: the plain form is the same thing."""


def calibration_feeds(
    crops: Sequence[ImageRGB], latents: Sequence[NDArray[np.float32]]
) -> list[dict[str, NDArray[np.float32]]]:
    return [{"target": to_blob(c), "source": latents[i % len(latents)]} for i, c in enumerate(crops)]


def quantize(
    fp32: Path,
    out: Path,
    crops: Sequence[ImageRGB],
    latents: Sequence[NDArray[np.float32]],
    form: Form = "plain",
) -> Form:
    """Static int8 quantization of the convolutions in the given form; writes `out` atomically. Returns the
    form made: "winograd-f2" when "winograd" was asked for but no layer is wide enough for F(4x4)."""
    from pipelines.winograd_int8 import calibrate_file

    tmp = out.with_name(out.name + ".part")
    staged = out.with_name(out.name + ".stage.onnx")
    fused = out.with_name(out.name + ".fused.onnx")
    feeds = calibration_feeds(crops, latents)
    try:
        # 1. One float run per calibration face measures everything: tile ranges of the Winograd layers, and
        # the ranges of every convolution's input and output for the static quantization of the rest.
        if form == "plain":
            # (Only the activation ranges, and only for a quantizer that takes them.)
            activations = calibrate_file(fp32, feeds, largest=0).activations if _takes_ranges() else {}
            _quantize_static(fp32, tmp, feeds, activations)
        else:
            # 2. The decoder's x2-upsample + conv pairs as convolutions of the small maps (exact, in float), so
            # that they too are wide enough for Winograd.
            source = fused if write_fused_upsampling(fp32, fused, feeds) else fp32
            calibration = calibrate_file(source, feeds, largest=LARGEST_BLOCK[form])
            blocks, narrow = write_winograd_stage(source, staged, calibration)
            _remove_model(fused)  # its disk space back before the quantizer writes the final file
            if not blocks and not narrow:
                raise NothingToRewriteError(f"{fp32.name} has no layer for the Winograd form")
            if form == "winograd" and 4 not in blocks:
                form = "winograd-f2"
            _quantize_static(staged, tmp, feeds, calibration.activations)
        tmp.replace(out)
    finally:  # nothing half-made stays behind
        for path in (staged, fused, tmp):
            _remove_model(path)
    return form


def _remove_model(path: Path) -> None:
    """A model file and its weights' side file, where they exist."""
    path.unlink(missing_ok=True)
    path.with_name(path.name + ".data").unlink(missing_ok=True)


def write_fused_upsampling(fp32: Path, fused: Path, feeds: Sequence[dict[str, NDArray[np.float32]]]) -> int:
    """`fp32` with its x2-upsample + 3x3-conv pairs fused (`pipelines.upsample_conv`), saved to `fused` with its
    weights in a side file; returns how many pairs (nothing is saved when there is none)."""
    import onnx

    from pipelines.upsample_conv import upsample_conv_model
    from pipelines.winograd_int8 import calibrate_file

    shapes = calibrate_file(fp32, feeds[:1], largest=0).shapes  # one float run measures the maps' shapes
    model = onnx.load(str(fp32))
    model, count = upsample_conv_model(model, shapes)
    if count:
        onnx.save(model, str(fused), save_as_external_data=True, location=fused.name + ".data")
    return count


def write_winograd_stage(fp32: Path, staged: Path, calibration: Calibration) -> tuple[list[int], int]:
    """`fp32` with its wide 3x3 layers in int8 Winograd form (as `calibration` chose them) and its narrow
    layer as GEMM + sums, saved; returns the block of each rewritten 3x3 layer and how many narrow layers
    were rewritten (nothing is saved when no layer at all was rewritten)."""
    import onnx

    from pipelines.channels_last import channels_last_model
    from pipelines.narrow_conv import narrow_conv_model
    from pipelines.winograd_int8 import int8_winograd_model

    model = onnx.load(str(fp32))
    model, narrow = narrow_conv_model(model, calibration.shapes or None)
    model, blocks = int8_winograd_model(model, in_place=True, calibration=calibration)
    if blocks:
        # The maps between Winograd layers stay channels last. It only saves time: on a graph it cannot follow,
        # the Winograd form goes on without it.
        with contextlib.suppress(Exception):  # onnx and onnxruntime raise several unrelated exception types
            model, _ = channels_last_model(model)
    if narrow + len(blocks):
        # The weights go to a side file one tensor at a time: a single-file save would serialize the whole
        # model into one more copy in memory (0.6 GB, the peak of making the int8 file).
        onnx.save(model, str(staged), save_as_external_data=True, location=staged.name + ".data")
    return blocks, narrow


def _quantize_static(
    source: Path, out: Path, feeds: list[dict[str, NDArray[np.float32]]], activations: dict[str, tuple[float, float]]
) -> None:
    """onnxruntime's static QDQ quantization of the Conv nodes left in `source`, per channel, u8 x s8.

    The activation ranges were measured in the float calibration run (`activations`). onnxruntime versions
    that take them as a calibration cache skip their own calibration run, which would hold the model three
    times over (1.2 GB more at the peak for inswapper); older ones calibrate on `feeds` themselves.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    root = logging.getLogger()  # the quantizer warns on the root logger about optional pre-processing
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="swapspot-quant-") as folder:
            extra = {}
            model_in: Path = source
            aside: list[TensorProto] = []
            if _takes_ranges() and activations:
                extra["calibration_cache_path"] = _calibration_cache(Path(folder) / "ranges.json", activations)
                # No calibration run then: the int8 Winograd weights, which the quantizer never touches but
                # holds three times over, wait outside (1.5 GB less at its peak for inswapper).
                model_in, aside = _set_aside_int8_weights(source)
            try:
                quantize_static(
                    str(model_in),
                    str(out),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"],
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    **extra,
                )
            finally:
                if model_in != source:
                    model_in.unlink(missing_ok=True)
            if aside:
                _put_back(out, source.parent, aside)
    finally:
        root.setLevel(level)


def _set_aside_int8_weights(staged: Path) -> tuple[Path, list[TensorProto]]:
    """A copy of the staged model's graph whose int8 Winograd weights (the int8 initializers that only
    MatMulIntegerToFloat reads) are graph inputs instead; the other weights stay in the staged model's side
    file. Returns its path and the weights set aside, as references into that side file (none: `staged`
    itself)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(staged), load_external_data=False)
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    aside: list[TensorProto] = []
    kept: list[TensorProto] = []
    for init in model.graph.initializer:
        only_int8_gemm = init.data_type == TensorProto.INT8 and readers.get(init.name) == {"MatMulIntegerToFloat"}
        (aside if only_int8_gemm else kept).append(init)
    if not aside:
        return staged, []
    refs = [TensorProto() for _ in aside]
    for ref, init in zip(refs, aside, strict=True):
        ref.CopyFrom(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.extend(helper.make_tensor_value_info(r.name, TensorProto.INT8, list(r.dims)) for r in refs)
    copy = staged.with_name(staged.name + ".aside.onnx")  # beside it: the side file's relative path still holds
    onnx.save(model, str(copy))
    return copy, refs


def _put_back(out: Path, folder: Path, refs: list[TensorProto]) -> None:
    """The weights `_set_aside_int8_weights` took out of the graph (`refs` into a side file in `folder`), back
    into the quantized model `out`.

    Written one tensor at a time, straight from the side file: protobuf lets a message's repeated fields
    continue after its other fields, so the graph is the quantized graph's bytes followed by one `initializer`
    entry per weight (the last original initializer, the emap matrix, stays last). Saving the whole 0.6 GB
    model at once would need twice that in memory for the serialization.
    """
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(out))
    wanted = {ref.name for ref in refs}
    kept = [value for value in model.graph.input if value.name not in wanted]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    tail = b""
    if len(model.graph.initializer):
        tail = model.graph.initializer[-1].SerializeToString()
        model.graph.initializer.pop()

    def field(number: int, payload_size: int) -> bytes:
        return _varint(number << 3 | 2) + _varint(payload_size)

    def located(ref: TensorProto) -> tuple[TensorProto, Path, int, int]:
        """The tensor without its data, and where its data lies: (header, file, offset, length)."""
        info = {entry.key: entry.value for entry in ref.external_data}
        header = TensorProto(name=ref.name, dims=ref.dims, data_type=ref.data_type)
        return header, folder / info["location"], int(info.get("offset", 0)), int(info["length"])

    def size(ref: TensorProto) -> int:
        header, _, _, length = located(ref)
        return header.ByteSize() + len(field(RAW_DATA_FIELD, length)) + length

    def weight(ref: TensorProto) -> bytes:
        header, path, offset, length = located(ref)
        with path.open("rb") as data:
            data.seek(offset)
            header.raw_data = data.read(length)
        return bytes(header.SerializeToString())

    graph = model.graph.SerializeToString()
    sizes = [size(ref) for ref in refs]
    extra = sum(len(field(INITIALIZER_FIELD, n)) + n for n in sizes)
    if tail:
        extra += len(field(INITIALIZER_FIELD, len(tail))) + len(tail)
    model.ClearField("graph")
    partial = out.with_name(out.name + ".part")
    with partial.open("wb") as file:
        file.write(model.SerializeToString())
        file.write(field(GRAPH_FIELD, len(graph) + extra))
        file.write(graph)
        for ref, expected in zip(refs, sizes, strict=True):
            payload = weight(ref)
            if len(payload) != expected:
                raise RuntimeError(f"{ref.name}: {len(payload)} bytes serialized, {expected} expected")
            file.write(field(INITIALIZER_FIELD, expected))
            file.write(payload)
        if tail:
            file.write(field(INITIALIZER_FIELD, len(tail)))
            file.write(tail)
    partial.replace(out)


GRAPH_FIELD = 7  # ModelProto.graph
INITIALIZER_FIELD = 5  # GraphProto.initializer
RAW_DATA_FIELD = 9  # TensorProto.raw_data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _takes_ranges() -> bool:
    """Whether this onnxruntime's `quantize_static` accepts measured ranges (a calibration cache)."""
    import inspect

    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _calibration_cache(path: Path, activations: dict[str, tuple[float, float]]) -> str:
    """The measured ranges as onnxruntime's calibration cache (min-max method)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    ranges = {name: (np.array(lo, np.float32), np.array(hi, np.float32)) for name, (lo, hi) in activations.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), path)
    return str(path)


# 3. Quality check ------------------------------------------------------------------------------------------


def _forward_all(path: Path, feeds: list[dict[str, np.ndarray]], threads: int) -> tuple[list[np.ndarray], float]:
    session = onnx_runtime.create_session(path, RuntimeSettings(intra_op_threads=threads))
    outputs, times = [], []
    for feed in feeds:
        started = time.perf_counter()
        outputs.append(onnx_runtime.run(session, feed)[0])
        times.append(time.perf_counter() - started)
    return outputs, float(np.median(times[1:] if len(times) > 1 else times)) * 1000.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return 99.0 if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def check_quality(
    fp32: Path, int8: Path, crops: Sequence[ImageRGB], latents: Sequence[NDArray[np.float32]], analyzer: FaceAnalyzer
) -> tuple[float, float | None, float, float]:
    """(mean PSNR dB, min identity similarity or None, fp32 ms, int8 ms) on up to 6 calibration faces."""
    feeds = calibration_feeds(crops[:6], latents)
    from pipelines.winograd import release_freed_memory

    reference, fp32_ms = _forward_all(fp32, feeds, threads=0)
    release_freed_memory()  # the fp32 session's memory back before the int8 one is built
    candidate, int8_ms = _forward_all(int8, feeds, threads=0)
    quality = float(np.mean([psnr(a, b) for a, b in zip(reference, candidate, strict=True)]))
    similarity = None
    if analyzer.recognizer is not None:
        sims = []
        for a, b in zip(reference, candidate, strict=True):
            face_a = (np.clip(a[0].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
            face_b = (np.clip(b[0].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
            # The 128 px frame holds the 112 px ArcFace frame shifted right by 8 px.
            emb_a = analyzer.recognizer.embed_aligned(np.ascontiguousarray(face_a[0:112, 8:120]))
            emb_b = analyzer.recognizer.embed_aligned(np.ascontiguousarray(face_b[0:112, 8:120]))
            sims.append(float(np.dot(emb_a, emb_b)))
        similarity = min(sims)
    return quality, similarity, fp32_ms, int8_ms


# 4. The whole procedure, cached ----------------------------------------------------------------------------


def ensure_int8_swapper(
    fp32: Path, emap: NDArray[np.float32], photos: Sequence[ImageRGB], analyzer: FaceAnalyzer
) -> QuantizationReport:
    """Make (once) and check the int8 swapper beside `fp32`; the report says whether to use it."""
    cached = cached_report(fp32)
    if cached is not None:
        return cached
    int8, report_path = int8_paths(fp32)
    stat = fp32.stat()
    crops = calibration_crops(photos, analyzer)
    if not crops:
        return QuantizationReport(str(fp32), None, False, "No calibration faces found: using the fp32 swapper.")
    latents = calibration_latents(photos, analyzer, emap, count=len(crops))
    forms = FORMS if current_recipe() == RECIPE else ("plain",)
    made: set[str] = set()
    fallbacks: list[str] = []
    for form in forms:
        if form in made:  # the F(4x4) form had no F(4x4) layer: it was this one already
            continue
        try:
            report, problem = _make_and_check(fp32, int8, crops, latents, analyzer, form)
        except NothingToRewriteError:
            continue
        except Exception as error:  # an optimisation that cannot be made must not cost the int8 swapper
            if form == forms[-1]:
                raise
            fallbacks.append(f"its {FORM_NAMES[form]} could not be made: {error}")
            continue
        made.add(report.form)
        if problem is None or form == forms[-1]:
            break
        fallbacks.append(f"its {FORM_NAMES[report.form]} {problem}")
    fallback = "; ".join(fallbacks) or None
    if fallback is not None and report.passed:
        report = replace(report, reason=f"{report.reason} ({FORM_NAMES[report.form]}: {fallback})")
    report = replace(report, fallback=fallback, source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns)
    report_path.write_text(json.dumps(asdict(report), indent=2))
    return report


def _make_and_check(
    fp32: Path,
    int8: Path,
    crops: Sequence[ImageRGB],
    latents: Sequence[NDArray[np.float32]],
    analyzer: FaceAnalyzer,
    form: Form,
) -> tuple[QuantizationReport, str | None]:
    """Quantize in one form and check it against fp32: the report, and what is wrong with it (or None)."""
    form = quantize(fp32, int8, crops, latents, form)
    quality, similarity, fp32_ms, int8_ms = check_quality(fp32, int8, crops, latents, analyzer)
    good = quality >= MIN_PSNR_DB and (similarity is None or similarity >= MIN_IDENTITY_SIMILARITY)
    faster = int8_ms * MIN_SPEEDUP <= fp32_ms
    named = f"int8 swapper ({FORM_NAMES[form]})" if form != "plain" else "int8 swapper"
    problem = None
    if good and faster:
        reason = f"{named} in use: PSNR {quality:.1f} dB vs fp32, {fp32_ms / int8_ms:.1f}x faster"
    elif good:
        problem = f"is not faster on this CPU ({fp32_ms:.0f} vs {int8_ms:.0f} ms)"
        reason = f"{named} {problem}: using fp32"
    else:
        shown = f", identity similarity {similarity:.2f}" if similarity is not None else ""
        problem = f"failed the quality check (PSNR {quality:.1f} dB{shown})"
        reason = f"{named} {problem}: using fp32"
    report = QuantizationReport(
        str(fp32),
        str(int8),
        problem is None,
        reason,
        quality,
        similarity,
        fp32_ms,
        int8_ms,
        recipe=current_recipe(),
        form=form,
    )
    return report, problem


def main(argv: list[str] | None = None) -> int:
    """`python -m pipelines.quantize [--swapper PATH] [--detector PATH] [--recognizer PATH]`: prepare it now."""
    import argparse
    import sys

    from pipelines.errors import SwapSpotError
    from pipelines.loading import ModelOverrides, int8_swapper_for, load_face_analyzer, resolve

    parser = argparse.ArgumentParser(prog="python -m pipelines.quantize", description=main.__doc__)
    for role in ("swapper", "detector", "recognizer"):
        parser.add_argument(f"--{role}", type=Path, default=None, help=f"local {role} ONNX file (unverified)")
    args = parser.parse_args(argv)
    try:
        overrides = ModelOverrides(detector=args.detector, recognizer=args.recognizer, swapper=args.swapper)
        swapper = resolve("swapper", overrides).path
        analyzer = load_face_analyzer(overrides, need_recognizer=False).analyzer
        with contextlib.suppress(SwapSpotError):  # without a recognizer only the PSNR is checked
            analyzer = load_face_analyzer(overrides, need_recognizer=True).analyzer
        path, reason = int8_swapper_for(swapper, "auto", analyzer, build=True)
    except SwapSpotError as error:
        print(error, file=sys.stderr)
        return 2
    report = cached_report(swapper)
    print(reason)
    if report is not None:
        print(json.dumps(asdict(report), indent=2))
    return 0 if path is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
