"""An int8 inswapper for CPUs, made on the user's machine and used only if it passes a quality check.

1. Calibration: aligned 128 px crops of the example faces (plus flipped and re-lit variants) and the
   latents of those faces (or random unit latents without a recognizer).
2. onnxruntime static QDQ quantization of the convolutions only (95% of the cost); the AdaIN linears,
   norms and activations stay in float.
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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pipelines import onnx_runtime
from pipelines.face_align import norm_crop
from pipelines.face_analysis import FaceAnalyzer
from pipelines.types import ImageRGB, RuntimeSettings

INT8_SUFFIX = ".int8.onnx"
REPORT_SUFFIX = ".int8.json"
MIN_PSNR_DB = 30.0
MIN_IDENTITY_SIMILARITY = 0.9
MIN_SPEEDUP = 1.2  # int8 must also be clearly faster (CPUs without fast int8 instructions may not gain)
RECIPE = "qdq-conv-perchannel-u8s8-v1"  # bump to invalidate cached int8 files when the recipe changes


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
    if report.source_size != stat.st_size or report.source_mtime_ns != stat.st_mtime_ns or report.recipe != RECIPE:
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


def quantize(fp32: Path, out: Path, crops: Sequence[ImageRGB], latents: Sequence[NDArray[np.float32]]) -> Path:
    """Static QDQ int8 quantization of the convolutions; writes `out` atomically."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    feeds = [{"target": to_blob(c), "source": latents[i % len(latents)]} for i, c in enumerate(crops)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    tmp = out.with_name(out.name + ".part")
    root = logging.getLogger()  # the quantizer warns on the root logger about optional pre-processing
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(fp32),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    tmp.replace(out)
    return out


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
    feeds = [{"target": to_blob(c), "source": latents[i % len(latents)]} for i, c in enumerate(crops[:6])]
    reference, fp32_ms = _forward_all(fp32, feeds, threads=0)
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
    quantize(fp32, int8, crops, latents)
    quality, similarity, fp32_ms, int8_ms = check_quality(fp32, int8, crops, latents, analyzer)
    good = quality >= MIN_PSNR_DB and (similarity is None or similarity >= MIN_IDENTITY_SIMILARITY)
    faster = int8_ms * MIN_SPEEDUP <= fp32_ms
    passed = good and faster
    if passed:
        reason = f"int8 swapper in use: PSNR {quality:.1f} dB vs fp32, {fp32_ms / int8_ms:.1f}x faster"
    elif good:
        reason = f"int8 swapper is not faster on this CPU ({fp32_ms:.0f} vs {int8_ms:.0f} ms): using fp32"
    else:
        shown = f", identity similarity {similarity:.2f}" if similarity is not None else ""
        reason = f"int8 swapper failed the quality check (PSNR {quality:.1f} dB{shown}): using fp32"
    report = QuantizationReport(
        str(fp32), str(int8), passed, reason, quality, similarity, fp32_ms, int8_ms, stat.st_size, stat.st_mtime_ns
    )
    report_path.write_text(json.dumps(asdict(report), indent=2))
    return report


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
