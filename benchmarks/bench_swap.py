"""Swap benchmarks: our ROI paste-back vs InsightFace's full-frame one, and clip throughput.

    .venv/bin/python -m benchmarks.bench_swap            # paste-back + clip throughput (about a minute)
    .venv/bin/python -m benchmarks.bench_swap --full     # also the full inswapper topology forward (554 MB)

1. Paste-back per face at 1280x720 and 1920x1080. Both sides share ONE precomputed swapper output: the
   sessions are stubs that return it, so no network runs and only the remaining work is timed:
   - "total": InsightFace's `INSwapper.get(paste_back=True)` vs our `InswapperEngine.swap` + `Patch.apply`
     (alignment, blob, latent, paste-back);
   - "paste-back only": InsightFace's get(paste_back=True) minus get(paste_back=False) vs our
     `paste_back(...)` + `Patch.apply` on the same crop and matrix.
2. Clip throughput (frames/s) through `swap_clip` on a synthetic 1280x720 clip with two faces per frame:
   decode + detect (real SCRFD 2.5G from ../shared when present, else the fake detector) + swap + encode,
   for the classic engine and for the tiny inswapper graph, next to plain re-encoding and detection only.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from insightface.model_zoo.inswapper import INSwapper  # noqa: E402

from pipelines import onnx_runtime  # noqa: E402
from pipelines.engine_classic import ClassicEngine  # noqa: E402
from pipelines.engine_inswapper import InswapperEngine, read_emap  # noqa: E402
from pipelines.face_align import arcface_template, estimate_norm  # noqa: E402
from pipelines.face_analysis import FaceAnalyzer  # noqa: E402
from pipelines.image_io import load_image  # noqa: E402
from pipelines.paste_back import paste_back  # noqa: E402
from pipelines.swap_engines import SourceIdentity, SwapEngine  # noqa: E402
from pipelines.swapping import create_swap_job, identity_from_photos, swap_clip  # noqa: E402
from pipelines.types import Face, ImageRGB, SwapSettings  # noqa: E402
from pipelines.video import process_video  # noqa: E402
from tests.model_builders.detector import build_fake_scrfd, face_at  # noqa: E402
from tests.model_builders.recognizer import build_fake_arcface  # noqa: E402
from tests.model_builders.swapper import build_inswapper_topology, build_tiny_inswapper  # noqa: E402

SHARED = ROOT.parent / "shared"
warnings.filterwarnings("ignore", category=FutureWarning)


class StubSession:
    """Looks like the tiny swapper's onnxruntime session but returns a precomputed output."""

    def __init__(self, real: Any, output: np.ndarray) -> None:
        self._real, self._output = real, output

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def get_providers(self) -> Any:
        return self._real.get_providers()

    def run(self, names: Any, feeds: Any, *args: Any) -> list[np.ndarray]:
        return [self._output]


class SourceFace:
    """What InsightFace's `get` reads from a source face."""

    def __init__(self, embedding: np.ndarray) -> None:
        self.normed_embedding = embedding


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm (mask cache, allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def textured(height: int, width: int, seed: int = 0) -> ImageRGB:
    small = np.random.default_rng(seed).integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC))


def face_pose(cx: float, cy: float, scale: float, angle: float) -> Face:
    c, s = np.cos(angle), np.sin(angle)
    kps = (arcface_template(128) - 64.0) @ (scale * np.array([[c, -s], [s, c]])).T + np.array([cx, cy])
    half = 64 * scale
    return Face((cx - half, cy - half, cx + half, cy + half), kps.astype(np.float32), 0.9)


def bench_paste_back(tmp: Path, repeats: int) -> None:
    """Section 1."""
    tiny = build_tiny_inswapper(tmp / "tiny.onnx")
    real = onnx_runtime.create_session(tiny)
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal(512).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    pred = rng.uniform(0, 1, (1, 3, 128, 128)).astype(np.float32)  # the shared "swapper output"
    stub = StubSession(real, pred)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs = INSwapper(model_file=str(tiny), session=stub)
    ours = InswapperEngine(stub, read_emap(tiny))
    prepared = ours.prepare_source(SourceIdentity(embedding, np.zeros((256, 256, 3), np.uint8), 1))
    fake = np.clip(255 * pred[0].transpose(1, 2, 0), 0, 255).astype(np.uint8)
    settings = SwapSettings()
    print("1. Paste-back per face (median ms; one shared precomputed swapper output, no network run)")
    print(
        f"   {'frame':>9} {'face px':>7} | {'insightface':>11} {'ours':>6} {'speed-up':>8} | paste-back only:"
        f" {'insightface':>11} {'ours':>6} {'speed-up':>8}"
    )
    for width, height, scales in ((1280, 720, (1.0, 2.0)), (1920, 1080, (1.5, 3.0))):
        frame = textured(height, width)
        for scale in scales:
            face = face_pose(width * 0.45, height * 0.5, scale, 0.1)
            case = PasteCase(frame, face, fake, embedding, prepared, settings)
            their_total, their_paste, our_total, our_paste = case.time(theirs, ours, repeats)
            print(
                f"   {width}x{height} {int(128 * scale):>7} | {their_total:>11.2f} {our_total:>6.2f} "
                f"{their_total / our_total:>7.1f}x | {'':>16} {their_paste:>11.2f} {our_paste:>6.2f} "
                f"{their_paste / our_paste:>7.1f}x"
            )
    print("   (ours includes one frame copy plus Patch.apply, i.e. it returns a new full frame like insightface)")


class PasteCase:
    """One frame and face, timed both ways."""

    def __init__(
        self, frame: ImageRGB, face: Face, fake: ImageRGB, embedding: np.ndarray, prepared: Any, settings: SwapSettings
    ) -> None:
        self.frame, self.face, self.fake, self.embedding = frame, face, fake, embedding
        self.prepared, self.settings = prepared, settings
        self.bgr = np.ascontiguousarray(frame[:, :, ::-1])
        self.to_crop = estimate_norm(face.kps, 128)

    def time(self, theirs: INSwapper, ours: InswapperEngine, repeats: int) -> tuple[float, float, float, float]:
        """(theirs total, theirs paste-back only, ours total, ours paste-back only) in median ms.

        The four measurements are interleaved run by run, so a busy machine slows all of them alike.
        """
        source = SourceFace(self.embedding)
        runs: list[Callable[[], object]] = [
            lambda: theirs.get(self.bgr, self.face, source, paste_back=True),
            lambda: theirs.get(self.bgr, self.face, source, paste_back=False),
            lambda: self._ours_total(ours),
            self._ours_paste,
        ]
        samples: list[list[float]] = [[] for _ in runs]
        for fn in runs:
            fn()  # warm-up (mask cache, allocations)
        for _ in range(repeats):
            for fn, times in zip(runs, samples, strict=True):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        their_total, their_no_paste, our_total, our_paste = (1000.0 * statistics.median(t) for t in samples)
        return their_total, their_total - their_no_paste, our_total, our_paste

    def _ours_total(self, ours: InswapperEngine) -> None:
        out = self.frame.copy()
        patch = ours.swap(self.frame, self.face, self.prepared, self.settings)
        assert patch is not None
        patch.apply(out)

    def _ours_paste(self) -> None:
        out = self.frame.copy()
        patch = paste_back(self.frame, self.fake, self.to_crop)
        assert patch is not None
        patch.apply(out)


def make_scene_clip(path: Path, frames: int, width: int = 1280, height: int = 720) -> tuple[Path, ImageRGB]:
    """A clip whose frames show ../shared's pair.jpg (two faces) on a canvas, drifting one pixel a frame."""
    from tests.test_swap_support import write_clip

    pair = SHARED / "data" / "scenes" / "pair.jpg"
    if pair.is_file():
        loaded = load_image(pair)
        size = (int(loaded.shape[1] * height / loaded.shape[0]), height)
        photo = np.asarray(cv2.resize(loaded, size), np.uint8)
    else:
        photo = textured(height, height, seed=5)
    canvas = np.full((height, width, 3), 70, np.uint8)
    x0 = (width - photo.shape[1]) // 2
    canvas[:, x0 : x0 + photo.shape[1]] = photo
    shots = [np.ascontiguousarray(np.roll(canvas, i, axis=1)) for i in range(frames)]
    return write_clip(path, shots, fps=25), canvas


def bench_clips(tmp: Path, frames: int) -> None:
    """Section 2."""
    clip, canvas = make_scene_clip(tmp / "scene.mp4", frames)
    detector = SHARED / "models" / "scrfd_2.5g_kps.onnx"
    if not detector.is_file():
        detector = build_fake_scrfd(tmp / "det.onnx", [face_at(500, 320, 120), face_at(760, 320, 100)])
    recognizer = build_fake_arcface(tmp / "arc.onnx")
    analyzer = FaceAnalyzer.from_paths(detector, recognizer)
    source_photo = SHARED / "data" / "faces" / "img1.jpg"
    source = load_image(source_photo) if source_photo.is_file() else canvas
    identity = identity_from_photos([source], analyzer)
    tiny = InswapperEngine.from_path(build_tiny_inswapper(tmp / "tiny.onnx"))
    print(f"2. Clip throughput, 1280x720, {frames} frames, detector {detector.name} on every frame")

    def timed(label: str, run: Callable[[], object]) -> None:
        start = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - start
        faces = getattr(result, "faces_swapped", None)
        extra = f", {faces} faces swapped" if faces is not None else ""
        print(f"   {label:<34} {frames / seconds:6.1f} frames/s{extra}")

    timed("re-encode only", lambda: process_video(clip, tmp / "plain.mp4", lambda f, i: f))

    def detect_only(frame: ImageRGB, index: int) -> ImageRGB:
        analyzer.detect(frame)
        return frame

    timed("detect only", lambda: process_video(clip, tmp / "det.mp4", detect_only))
    engines: list[SwapEngine] = [ClassicEngine(), tiny]
    for engine in engines:
        job = create_swap_job(analyzer, engine, [identity], settings=SwapSettings(engine=engine.name))
        label = "inswapper (tiny graph)" if engine.name == "inswapper" else engine.name
        timed(f"swap_clip {label}", functools.partial(swap_clip, clip, tmp / "out.mp4", job))


def bench_full_topology(tmp: Path) -> None:
    """Section 3 (--full): the real inswapper's cost with random weights."""
    path = build_inswapper_topology(tmp / "inswapper_topology.onnx", seed=0)
    engine = InswapperEngine.from_path(path)
    crop = textured(128, 128, seed=1)
    latent = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    latent /= np.linalg.norm(latent)
    ms = median_ms(lambda: engine.forward(crop, latent), 5)
    print(f"3. Full inswapper topology (random weights, {path.stat().st_size / 1e6:.0f} MB): forward {ms:.0f} ms/face")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per paste-back figure")
    parser.add_argument("--frames", type=int, default=40, help="frames in the throughput clip")
    parser.add_argument("--full", action="store_true", help="also build and time the full inswapper topology")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as folder:
        tmp = Path(folder)
        bench_paste_back(tmp, args.repeats)
        bench_clips(tmp, args.frames)
        if args.full:
            bench_full_topology(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
