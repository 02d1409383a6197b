"""Training and evaluation data: real photos grouped by identity, and signal samples made from them.

1. `load_faces` detects every face of every photo once (the real detector, ../shared photos).
2. `group_identities` joins photos into identities with master.csv's "Yes" pairs (connected components),
   so train and held-out sets never share a person.
3. `pseudo_fake_samples` rescales each face to random sizes (80-600 px), makes a real / pseudo-fake
   pair from each, and measures the signals of both (labels 0 and 1).
4. `identity_blend_samples`: two-identity blends (training experiments only, off by default);
   `classic_samples` / `classic_engine_samples`: classic swaps for evaluation (cheapfake.py / the app's
   ClassicEngine), donors chosen by the caller (the evaluation passes held-out identities only).

Every sample function can also keep each picture's texture-net input (`keep_crops`, see
`signals.texture_crop`), for training the net and for scoring with it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pipelines.engine_classic import ClassicEngine
from pipelines.face_align import norm_crop
from pipelines.face_analysis import FaceAnalyzer
from pipelines.image_io import load_image
from pipelines.spot.cheapfake import classic_swap
from pipelines.spot.pseudofake import jpeg, make_identity_blend, make_pseudo_fake, rescale_face
from pipelines.spot.signals import FaceSignals, extract_signals
from pipelines.swap_engines import ALIGNED_SIZE, SourceIdentity
from pipelines.types import BoxXYXY, Face, ImageRGB, Keypoints5, SwapSettings

SIZE_RANGE = (80.0, 600.0)
"""Face sizes (pixels) drawn log-uniformly for training samples."""
SIZE_BUCKETS = ((0, 128), (128, 200), (200, 400), (400, 100_000))
"""Face-size buckets (pixels) used in every report."""


@dataclass(frozen=True)
class PhotoFace:
    """One detected face of one real photo."""

    photo: str  # file name
    identity: int  # identity group index
    box: BoxXYXY
    kps: Keypoints5
    size: float


@dataclass
class SampleSet:
    """Signal samples: features, labels, face sizes (px) and the identity of each sample."""

    features: NDArray[np.float64]  # (N, n_signals) signal values
    scales: NDArray[np.float64]  # (N,) FaceSignals.face_scale
    labels: NDArray[np.int64]  # (N,) 1 = fake
    sizes: NDArray[np.float64]  # (N,) face size in pixels
    identities: NDArray[np.int64]  # (N,)
    crops: NDArray[np.uint8]  # (N, CROP_SIZE, CROP_SIZE, 4) texture-net inputs (empty (0,) unless kept)

    @classmethod
    def concat(cls, parts: Sequence[SampleSet]) -> SampleSet:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def group_identities(photos: Iterable[str], pairs_csv: Path) -> dict[str, int]:
    """Photo name -> identity index: connected components of the "Yes" (same person) pairs."""
    names = sorted(set(photos))
    parent = {n: n for n in names}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    with pairs_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            a, b = row["file_x"], row["file_y"]
            if row["Decision"].strip().lower() == "yes" and a in parent and b in parent:
                parent[find(a)] = find(b)
    roots = sorted({find(n) for n in names})
    index = {r: i for i, r in enumerate(roots)}
    return {n: index[find(n)] for n in names}


def load_faces(
    faces_dir: Path, detector_path: Path, min_size: float = 96.0
) -> tuple[list[PhotoFace], dict[str, ImageRGB]]:
    """Every face of at least `min_size` px in the folder, and the decoded photos by name."""
    analyzer = FaceAnalyzer.from_paths(detector_path)
    photos = sorted(p for p in faces_dir.glob("*.jpg"))
    groups = group_identities([p.name for p in photos], faces_dir / "master.csv")
    faces: list[PhotoFace] = []
    images: dict[str, ImageRGB] = {}
    for path in photos:
        image = load_image(path)
        images[path.name] = image
        for face in analyzer.detect(image):
            if face.size >= min_size:
                faces.append(PhotoFace(path.name, groups[path.name], face.box, face.kps, face.size))
    return faces, images


def split_identities(faces: Sequence[PhotoFace], held_out_fraction: float, seed: int) -> tuple[set[int], set[int]]:
    """Train and held-out identity sets (disjoint), chosen with a fixed seed."""
    ids = sorted({f.identity for f in faces})
    rng = np.random.default_rng(seed)
    rng.shuffle(ids)
    n_held = max(1, round(len(ids) * held_out_fraction))
    return set(ids[n_held:]), set(ids[:n_held])


CALIBRATION_FRACTION = 0.25
"""Share of the training identities kept apart for calibration (and the texture net's validation)."""


@dataclass(frozen=True)
class TrainingSplit:
    """Faces by role, split by identity: held-out identities are never seen in training."""

    fit: list[PhotoFace]
    calibrate: list[PhotoFace]
    held_out: list[PhotoFace]
    identities: int


def split_for_training(faces: Sequence[PhotoFace], held_out_fraction: float, seed: int) -> TrainingSplit:
    """1. Held-out identities (seed) -> 2. the rest into fitting and calibration identities (seed + 1).
    The logistic model and the texture net both train from this one split."""
    train_ids, held_ids = split_identities(faces, held_out_fraction, seed)
    train_faces = [f for f in faces if f.identity in train_ids]
    fit_ids, cal_ids = split_identities(train_faces, CALIBRATION_FRACTION, seed + 1)
    return TrainingSplit(
        fit=[f for f in train_faces if f.identity in fit_ids],
        calibrate=[f for f in train_faces if f.identity in cal_ids],
        held_out=[f for f in faces if f.identity in held_ids],
        identities=len(train_ids) + len(held_ids),
    )


def random_size(rng: np.random.Generator, face_size: float) -> float:
    """A log-uniform target face size, upscaling the photo at most 1.3x."""
    hi = min(SIZE_RANGE[1], max(face_size * 1.3, SIZE_RANGE[0] * 1.2))
    return float(np.exp(rng.uniform(np.log(SIZE_RANGE[0]), np.log(hi))))


class _Collector:
    """Accumulates signal rows into a SampleSet."""

    def __init__(self, keep_crops: bool = False) -> None:
        self.rows: list[tuple[NDArray[np.float64], float, int, float, int]] = []
        self.crops: list[NDArray[np.uint8]] = []
        self.keep_crops = keep_crops

    def add(self, picture: ImageRGB, kps: Keypoints5, label: int, size: float, identity: int) -> None:
        sig: FaceSignals = extract_signals(picture, kps)
        self.rows.append((sig.vector(), sig.face_scale, label, size, identity))
        if self.keep_crops and sig.crop is not None:
            self.crops.append(sig.crop)

    def result(self) -> SampleSet:
        features, scales, labels, sizes, identities = (np.array(c) for c in zip(*self.rows, strict=True))
        crops = np.stack(self.crops) if self.crops else np.zeros((len(self.rows), 0), np.uint8)
        return SampleSet(features, scales, labels, sizes, identities, crops)


def pseudo_fake_samples(
    faces: Sequence[PhotoFace],
    images: dict[str, ImageRGB],
    per_face: int,
    seed: int,
    oval_probability: float = 0.0,
    keep_crops: bool = False,
) -> SampleSet:
    """`per_face` real / pseudo-fake pairs per face, at random sizes, with their signals.

    `oval_probability`: share of pseudo-fakes blended with a face-oval mask instead of the swapper's square.
    """
    rng = np.random.default_rng(seed)
    out = _Collector(keep_crops)
    for face in faces:
        for _ in range(per_face):
            # 1. A random face size and mirror, then a pair with the same post-processing.
            target = random_size(rng, face.size)
            image, kps = rescale_face(images[face.photo], face.kps, face.box, target, flip=bool(rng.random() < 0.5))
            pair = make_pseudo_fake(image, kps, rng, oval_probability=oval_probability)
            # 2. Signals of both.
            out.add(pair.real, pair.kps, 0, target, face.identity)
            out.add(pair.fake, pair.kps, 1, target, face.identity)
    return out.result()


def identity_blend_samples(
    faces: Sequence[PhotoFace],
    images: dict[str, ImageRGB],
    per_face: int,
    seed: int,
    keep_crops: bool = False,
    colour_strength: tuple[float, float] = (0.5, 1.0),
) -> SampleSet:
    """`per_face` real / two-identity-blend pairs per face (see pseudofake.make_identity_blend).

    Donors are other identities of the SAME list, so a training set never borrows a held-out face.
    Target and donor are rescaled to independent random sizes.
    """
    rng = np.random.default_rng(seed)
    out = _Collector(keep_crops)
    for face in faces:
        donors = [f for f in faces if f.identity != face.identity]
        for _ in range(per_face):
            target = random_size(rng, face.size)
            image, kps = rescale_face(images[face.photo], face.kps, face.box, target, flip=bool(rng.random() < 0.5))
            donor = donors[int(rng.integers(len(donors)))]
            src, src_kps = rescale_face(
                images[donor.photo], donor.kps, donor.box, random_size(rng, donor.size), flip=bool(rng.random() < 0.5)
            )
            pair = make_identity_blend(image, kps, src, src_kps, rng, colour_strength=colour_strength)
            out.add(pair.real, pair.kps, 0, target, face.identity)
            out.add(pair.fake, pair.kps, 1, target, face.identity)
    return out.result()


def classic_samples(
    targets: Sequence[PhotoFace],
    sources: Sequence[PhotoFace],
    images: dict[str, ImageRGB],
    per_face: int,
    seed: int,
    native: bool = False,
    keep_crops: bool = False,
) -> SampleSet:
    """Classic-engine swaps: each target face gets a different person's face.

    `native` keeps every photo at its own resolution (the realistic case); otherwise target and source
    faces are rescaled to independent random sizes.
    """
    rng = np.random.default_rng(seed)
    out = _Collector(keep_crops)
    for face in targets:
        donors = [f for f in sources if f.identity != face.identity]
        for _ in range(per_face):
            # 1. Target and source at independent random sizes.
            target = face.size if native else random_size(rng, face.size)
            image, kps = rescale_face(images[face.photo], face.kps, face.box, target, flip=bool(rng.random() < 0.5))
            donor = donors[int(rng.integers(len(donors)))]
            src_size = donor.size if native else random_size(rng, donor.size)
            src, src_kps = rescale_face(images[donor.photo], donor.kps, donor.box, src_size)
            # 2. The swap, then the same JPEG on both.
            fake = classic_swap(src, src_kps, image, kps)
            if rng.random() < 0.7:
                quality = int(rng.integers(50, 101))
                image, fake = jpeg(image, quality), jpeg(fake, quality)
            out.add(image, kps, 0, target, face.identity)
            out.add(fake, kps, 1, target, face.identity)
    return out.result()


def classic_engine_samples(
    targets: Sequence[PhotoFace],
    sources: Sequence[PhotoFace],
    images: dict[str, ImageRGB],
    per_face: int,
    seed: int,
    keep_crops: bool = False,
) -> SampleSet:
    """Swaps made by the app's own classic engine (`pipelines.engine_classic.ClassicEngine`), photos at
    their own size: each target face gets a different person's face from `sources`; same JPEG on both."""
    rng = np.random.default_rng(seed)
    engine = ClassicEngine()
    settings = SwapSettings(engine="classic")
    out = _Collector(keep_crops)
    for face in targets:
        donors = [f for f in sources if f.identity != face.identity]
        image = images[face.photo]
        target = Face(box=face.box, kps=face.kps, score=1.0)
        for _ in range(per_face):
            donor = donors[int(rng.integers(len(donors)))]
            aligned, _ = norm_crop(images[donor.photo], donor.kps, ALIGNED_SIZE)
            source = engine.prepare_source(SourceIdentity(embedding=None, aligned=aligned, photos=1))
            patch = engine.swap(image, target, source, settings)
            if patch is None:
                continue
            fake = image.copy()
            patch.apply(fake)
            real = image
            if rng.random() < 0.7:
                quality = int(rng.integers(50, 101))
                real, fake = jpeg(real, quality), jpeg(fake, quality)
            out.add(real, face.kps, 0, face.size, face.identity)
            out.add(fake, face.kps, 1, face.size, face.identity)
    return out.result()
