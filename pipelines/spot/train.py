"""Train the swap detector from real photos only: `python -m pipelines.spot.train`.

Steps (all random choices come from --seed, so a run is reproducible):
1. detect every face of the real photos and group photos into identities (master.csv "Yes" pairs);
2. hold out a share of the identities for evaluation (never seen here), split the rest into a fitting
   set and a calibration set, again by identity;
3. make real / pseudo-fake pairs (inswapper geometry, see pseudofake.py) at random face sizes;
4. fit the logistic model on the fitting set, Platt-calibrate it on the calibration set; with the texture
   net (`weights/spot_texture.onnx`, trained by `python -m pipelines.spot.train_texture` on the fitting
   identities only), its output joins as the signal `learned_texture`, weighted together with the
   calibration on the calibration set (whose identities the net never saw);
5. write the weights JSON (with the recipe and the split) under pipelines/spot/weights/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pipelines.spot.data import (
    PhotoFace,
    SampleSet,
    TrainingSplit,
    identity_blend_samples,
    load_faces,
    pseudo_fake_samples,
    split_for_training,
)
from pipelines.spot.metrics import false_positive_rate, roc_auc
from pipelines.spot.model import WEIGHTS_PATH, calibrate, fuse_signal, save_model, train_model
from pipelines.spot.signals import SIGNAL_NAMES
from pipelines.spot.spotter import TEXTURE_SIGNAL
from pipelines.spot.texture_net import TEXTURE_NET_PATH, TextureNet
from pipelines.types import ImageRGB

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FACES = ROOT.parent / "shared" / "data" / "faces"
DEFAULT_DETECTOR = ROOT.parent / "shared" / "models" / "scrfd_2.5g_kps.onnx"
SEED = 1234
HELD_OUT_FRACTION = 0.3
FAKE_PRIOR = 0.35
OVAL_PROBABILITY = 0.0  # measured: 0.5 lowered held-out AUC (0.886 -> 0.847) and did not help classic swaps
BLEND_PER_FACE = 0  # two-identity blends per face; measured (MODEL_CARD): 4-16 cost held-out AUC, classic +0.02


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.spot.train", description=__doc__.split("\n")[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="folder of real photos + master.csv")
    parser.add_argument("--detector", type=Path, default=DEFAULT_DETECTOR, help="SCRFD ONNX face detector")
    parser.add_argument("--oval", type=float, default=OVAL_PROBABILITY, help="share of oval-mask pseudo-fakes")
    parser.add_argument("--per-face", type=int, default=16, help="pseudo-fake pairs per face (random sizes)")
    parser.add_argument(
        "--blend-per-face",
        type=int,
        default=BLEND_PER_FACE,
        help="extra two-identity blend pairs per face (pseudofake.make_identity_blend; donors from the same split)",
    )
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--l2", type=float, default=1e-2, help="L2 penalty of the logistic model")
    parser.add_argument("--fake-prior", type=float, default=FAKE_PRIOR, help="share of swaps assumed by calibration")
    parser.add_argument(
        "--texture-net",
        type=Path,
        default=TEXTURE_NET_PATH,
        help="texture CNN (ONNX) whose output joins as a signal; a missing file leaves it out",
    )
    parser.add_argument("--no-texture", action="store_true", help="the 16 hand-made signals only")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="where to write the weights JSON")
    return parser


def training_faces(
    faces_dir: Path, detector: Path, seed: int
) -> tuple[list[PhotoFace], dict[str, ImageRGB], TrainingSplit] | None:
    """The faces, photos and identity split that both trainers use; None, after saying why, when the photos
    folder or the detector is missing."""
    if not faces_dir.is_dir() or not detector.is_file():
        print(f"error: need the photos folder ({faces_dir}) and the detector ({detector})", file=sys.stderr)
        return None
    faces, images = load_faces(faces_dir, detector)
    return faces, images, split_for_training(faces, HELD_OUT_FRACTION, seed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    start = time.time()
    # 1-2. Faces; held-out, fitting and calibration identities.
    loaded = training_faces(args.faces, args.detector, args.seed)
    if loaded is None:
        return 2
    faces, images, split = loaded
    fit_faces, cal_faces = split.fit, split.calibrate
    print(
        f"{len(faces)} faces, {split.identities} identities: fit {len(fit_faces)} faces, "
        f"calibrate {len(cal_faces)}, held out {len(split.held_out)}"
    )
    # 3. Real / pseudo-fake pairs.
    net = None if args.no_texture or not args.texture_net.is_file() else TextureNet(args.texture_net)
    fit = pseudo_fake_samples(fit_faces, images, args.per_face, args.seed + 2, args.oval)
    cal = pseudo_fake_samples(cal_faces, images, args.per_face, args.seed + 3, args.oval, keep_crops=net is not None)
    if args.blend_per_face > 0:
        fit = SampleSet.concat([fit, identity_blend_samples(fit_faces, images, args.blend_per_face, args.seed + 12)])
        cal_blends = identity_blend_samples(
            cal_faces, images, args.blend_per_face, args.seed + 13, keep_crops=net is not None
        )
        cal = SampleSet.concat([cal, cal_blends])
    print(f"samples: fit {len(fit.labels)}, calibrate {len(cal.labels)} ({time.time() - start:.0f} s)")
    # 4. Fit and calibrate.
    model = train_model(fit.features, fit.scales, fit.labels, SIGNAL_NAMES, args.l2)
    if net is None:
        model = calibrate(model, cal.features, cal.scales, cal.labels, args.fake_prior)
        cal_features = cal.features
    else:
        texture = net.logits(cal.crops)
        model = fuse_signal(model, TEXTURE_SIGNAL, cal.features, cal.scales, texture, cal.labels, args.fake_prior)
        cal_features = np.c_[cal.features, texture]
    cal_scores = model.predict(cal_features, cal.scales)
    print(
        f"calibration set: AUC {roc_auc(cal.labels, cal_scores):.3f}, "
        f"FPR@0.5 {false_positive_rate(cal.labels, cal_scores):.3f}"
    )
    # 5. Save, with the recipe and the split.
    save_model(model, args.out)
    data = json.loads(args.out.read_text())
    data["recipe"] = {
        "seed": args.seed,
        "per_face": args.per_face,
        "oval_probability": args.oval,
        "blend_per_face": args.blend_per_face,
        "texture_net": None if net is None else args.texture_net.name,
        "l2": args.l2,
        "fake_prior": args.fake_prior,
        "held_out_fraction": HELD_OUT_FRACTION,
        "fit_samples": len(fit.labels),
        "calibration_samples": len(cal.labels),
        "held_out_photos": sorted({f.photo for f in split.held_out}),
    }
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
