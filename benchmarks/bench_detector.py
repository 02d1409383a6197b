"""Per-face cost of the swap detector on this CPU: `python -m benchmarks.bench_detector [--detector PATH]`.

Times, per face and averaged over the real photos: the per-frame signals (what every video frame needs:
the hand-made signals plus the texture net when the committed model uses it; the net is also timed
alone), the learned score, and the full verdict with sentences and heatmap. Face detection is timed
separately.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.spot import Spotter

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detector", type=Path, default=SHARED / "models" / "scrfd_2.5g_kps.onnx")
    parser.add_argument("--faces", type=Path, default=SHARED / "data" / "faces")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    analyzer = FaceAnalyzer.from_paths(args.detector)
    spotter = Spotter()
    # 1. Photos and their faces (detector timed per photo).
    samples, detect_ms = [], []
    for path in sorted(args.faces.glob("*.jpg"))[:20]:
        image = load_image(path)
        start = time.perf_counter()
        faces = analyzer.detect(image)
        detect_ms.append((time.perf_counter() - start) * 1000)
        samples += [(image, face) for face in faces]
    # 2. Warm up, then time each stage per face.
    for image, face in samples[:3]:
        spotter.score_face(image, face)
    signal_ms, score_ms, full_ms, net_ms = [], [], [], []
    for _ in range(args.repeat):
        for image, face in samples:
            t0 = time.perf_counter()
            signals = spotter.measure(image, face.kps)
            t1 = time.perf_counter()
            spotter.score_signals(signals)
            t2 = time.perf_counter()
            spotter.score_face(image, face)
            t3 = time.perf_counter()
            signal_ms.append((t1 - t0) * 1000)
            score_ms.append((t2 - t1) * 1000)
            full_ms.append((t3 - t2) * 1000)
            if spotter.texture_net is not None and signals.crop is not None:
                t4 = time.perf_counter()
                spotter.texture_net.logits(signals.crop[None])
                net_ms.append((time.perf_counter() - t4) * 1000)
    sizes = [face.size for _, face in samples]
    print(f"{len(samples)} faces ({min(sizes):.0f}-{max(sizes):.0f} px), {args.repeat} repeats")
    rows = [
        ("per-frame signals (incl. texture net)", signal_ms),
        ("learned score", score_ms),
        ("full verdict (signals+score+sentences+heatmap)", full_ms),
    ]
    if net_ms:
        rows.append(("texture net alone (onnxruntime, 1 thread)", net_ms))
    for name, values in rows:
        print(f"{name:48s} median {np.median(values):6.2f} ms/face   p90 {np.percentile(values, 90):6.2f}")
    print(f"{'face detection (SCRFD 2.5g, per photo)':48s} median {np.median(detect_ms):6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
