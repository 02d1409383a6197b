"""Evaluate the committed detector: `python -m pipelines.spot.evaluate [--fakes DIR --reals DIR]`.

Prints AUC, the false-positive rate at the 0.5 threshold and per-face-size results on:
1. held-out pseudo-fakes: identities never used in training (same split as training, fixed seed);
2. classic swaps of held-out targets with held-out donors (cheapfake.py, at the photos' own size and at
   random sizes; and the app's own `pipelines.engine_classic.ClassicEngine`, at the photos' own size);
3. the real photos as they are (share of photos scored >= 0.5);
4. with --fakes / --reals: any folders of genuine swaps and real photos (per photo: highest face score).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from pipelines.errors import InputError
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import IMAGE_SUFFIXES, load_image
from pipelines.spot.data import (
    PhotoFace,
    SampleSet,
    classic_engine_samples,
    classic_samples,
    load_faces,
    pseudo_fake_samples,
    split_identities,
)
from pipelines.spot.metrics import format_report, report
from pipelines.spot.pseudofake import jpeg, make_pseudo_fake, rescale_face
from pipelines.spot.signals import extract_signals, flicker
from pipelines.spot.spotter import Spotter
from pipelines.spot.train import DEFAULT_DETECTOR, DEFAULT_FACES, HELD_OUT_FRACTION, SEED
from pipelines.types import ImageRGB


def score_samples(spotter: Spotter, samples: SampleSet) -> np.ndarray:
    """Scores of signal samples; the texture net's output is appended when the model uses it."""
    features = samples.features
    if spotter.texture_net is not None:
        features = np.c_[features, spotter.texture_net.logits(samples.crops)]
    return spotter.model.predict(features, samples.scales)


def evaluate_folders(spotter: Spotter, analyzer: FaceAnalyzer, fakes: Path, reals: Path) -> dict[str, object]:
    """Per photo: the highest face score; photos without a face are skipped (and counted)."""
    labels, scores, sizes, skipped = [], [], [], 0
    for label, folder in ((1, fakes), (0, reals)):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                image = load_image(path)
            except InputError:
                skipped += 1
                continue
            faces = analyzer.detect(image)
            if not faces:
                skipped += 1
                continue
            verdict = spotter.score_image(image, faces)
            labels.append(label)
            scores.append(verdict.score)
            sizes.append(faces[0].size)
    rep = report(f"folders fakes={fakes} reals={reals}", np.array(labels), np.array(scores), np.array(sizes))
    rep["skipped_no_face"] = skipped
    return rep


def simulated_flicker(
    faces: list[PhotoFace], images: dict[str, ImageRGB], frames: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean texture flicker of simulated clips: real (a photo jittering by a pixel, re-encoded per frame)
    and fake (the same frames, each with its own pseudo-fake: a face regenerated per frame)."""
    rng = np.random.default_rng(seed)
    real_values, fake_values = [], []
    for face in faces:
        image, kps = rescale_face(images[face.photo], face.kps, face.box, min(face.size, 300.0))
        textures: dict[int, list[np.ndarray]] = {0: [], 1: []}
        for _ in range(frames):
            # 1. A new frame: sub-pixel camera shake, fresh JPEG noise.
            dx, dy = rng.uniform(-1.0, 1.0, size=2)
            shifted = cv2.warpAffine(image, np.array([[1.0, 0, dx], [0, 1.0, dy]]), image.shape[1::-1])
            moved = (kps + np.array([dx, dy])).astype(np.float32)
            frame = jpeg(np.asarray(shifted, np.uint8), int(rng.integers(80, 96)))
            pair = make_pseudo_fake(frame, moved, rng, jpeg_probability=0.0)
            textures[0].append(extract_signals(pair.real, moved).texture)
            textures[1].append(extract_signals(pair.fake, moved).texture)
        # 2. Mean flicker between consecutive frames.
        real_values.append(np.mean([flicker(a, b) for a, b in zip(textures[0], textures[0][1:], strict=False)]))
        fake_values.append(np.mean([flicker(a, b) for a, b in zip(textures[1], textures[1][1:], strict=False)]))
    return np.array(real_values), np.array(fake_values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.spot.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="real photos + master.csv (built-in sets)")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="SCRFD ONNX face detector")
    parser.add_argument("--fakes", type=Path, help="folder of genuine face swaps")
    parser.add_argument("--reals", type=Path, help="folder of real photos to compare with --fakes")
    parser.add_argument("--per-face", type=int, default=8, help="held-out pseudo-fake pairs per face")
    parser.add_argument("--classic-per-face", type=int, default=6, help="classic swaps per held-out face")
    parser.add_argument("--seed", type=int, default=SEED, help="must match the training seed for the split")
    parser.add_argument("--weights", type=Path, help="weights JSON to evaluate (default: the committed ones)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--skip-builtin", action="store_true", help="only evaluate --fakes/--reals")
    args = parser.parse_args(argv)
    if (args.fakes is None) != (args.reals is None):
        print("error: give both --fakes and --reals", file=sys.stderr)
        return 2
    if not args.detector.is_file():
        print(f"error: face detector not found: {args.detector}", file=sys.stderr)
        return 2
    start = time.time()
    spotter = Spotter(weights_path=args.weights)
    crops = spotter.texture_net is not None
    reports: list[dict[str, object]] = []
    # 1-3. The built-in sets, made from held-out identities of the real photos.
    if not args.skip_builtin and args.faces.is_dir():
        faces, images = load_faces(args.faces, args.detector)
        _, held_ids = split_identities(faces, HELD_OUT_FRACTION, args.seed)
        held = [f for f in faces if f.identity in held_ids]
        pseudo = pseudo_fake_samples(held, images, args.per_face, args.seed + 100, 0.0, keep_crops=crops)
        title = "held-out pseudo-fakes (inswapper geometry)"
        reports.append(report(title, pseudo.labels, score_samples(spotter, pseudo), pseudo.sizes))
        # Donors are held-out identities too: no face of a training identity appears in an evaluation swap.
        per = args.classic_per_face
        native = classic_samples(held, held, images, per, args.seed + 200, native=True, keep_crops=crops)
        reports.append(
            report("classic swaps, photos at own size", native.labels, score_samples(spotter, native), native.sizes)
        )
        mixed = classic_samples(held, held, images, per, args.seed + 300, keep_crops=crops)
        reports.append(report("classic swaps, random sizes", mixed.labels, score_samples(spotter, mixed), mixed.sizes))
        engine = classic_engine_samples(held, held, images, per, args.seed + 500, keep_crops=crops)
        title = "ClassicEngine swaps, photos at own size"
        reports.append(report(title, engine.labels, score_samples(spotter, engine), engine.sizes))
        real_f, fake_f = simulated_flicker(held[:10], images, 6, args.seed + 400)
        labels = np.r_[np.zeros(len(real_f), int), np.ones(len(fake_f), int)]
        rep = report(
            "simulated clips, texture flicker (signal alone)",
            labels,
            np.r_[real_f, fake_f],
            np.full(len(labels), 300.0),
        )
        rep["real_flicker_mean"], rep["fake_flicker_mean"] = float(real_f.mean()), float(fake_f.mean())
        reports.append(rep)
        # Real photos as they are: the photo's score is its highest face score.
        analyzer = FaceAnalyzer.from_paths(args.detector)
        for title, names in (
            ("real photos, held-out identities", sorted({f.photo for f in held})),
            ("real photos, all", sorted(images)),
        ):
            photo_scores, photo_sizes = [], []
            for name in names:
                found = analyzer.detect(images[name])
                if found:
                    photo_scores.append(spotter.score_image(images[name], found).score)
                    photo_sizes.append(found[0].size)
            reports.append(
                report(title, np.zeros(len(photo_scores), int), np.array(photo_scores), np.array(photo_sizes))
            )
    # 4. User folders.
    if args.fakes is not None and args.reals is not None:
        analyzer = FaceAnalyzer.from_paths(args.detector)
        reports.append(evaluate_folders(spotter, analyzer, args.fakes, args.reals))
    if args.json:
        print(json.dumps(reports, indent=1, default=float))
    else:
        for rep in reports:
            print(format_report(rep))
        print(f"({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
