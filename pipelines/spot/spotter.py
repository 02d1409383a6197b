"""The detector's public face: `Spotter` turns a photo and its detected faces into verdicts.

`Spotter` loads the committed weights once and keeps no per-user or per-call state, so one instance
serves every thread and browser session. Per face: signals -> learned, calibrated score -> each
signal's contribution, plain-language sentences and a heatmap. Per photo: the highest face score.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pipelines.face_analysis import check_image
from pipelines.spot.explain import explain_face, face_heatmap
from pipelines.spot.model import SpotModel, load_model
from pipelines.spot.signals import FaceSignals, extract_signals
from pipelines.spot.texture_net import TextureNet, get_texture_net
from pipelines.types import BoxXYXY, Face, ImageRGB, Keypoints5

THRESHOLD = 0.5
"""Default decision threshold on the calibrated score."""
TEXTURE_SIGNAL = "learned_texture"
"""The texture CNN's output (log-odds), a signal like the others when the weights name it."""


@dataclass(frozen=True, eq=False)
class FaceVerdict:
    """How likely one face is to be swapped, and why."""

    box: BoxXYXY  # the face's box in image pixels
    score: float  # calibrated probability that the face was swapped, 0..1 (0.5 = default threshold)
    signals: dict[str, float]  # signal name -> measured value
    contributions: dict[str, float]  # signal name -> push on the score's log-odds (+ = towards "swapped")
    explanations: list[str]  # plain-language sentences, most important first
    heatmap: NDArray[np.float32]  # 0..1 evidence over `heatmap_box` (any resolution; resize to the box)
    heatmap_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x1, y1, x2, y2 in image pixels (clipped)
    face_scale: float = 0.0  # log2(image pixels per aligned unit) of this face
    texture: NDArray[np.float32] | None = field(default=None, repr=False)  # for video flicker (SpotHistory)

    @property
    def is_swapped(self) -> bool:
        return self.score >= THRESHOLD

    @property
    def size(self) -> float:
        x1, y1, x2, y2 = self.box
        return float(np.sqrt(max(x2 - x1, 0.0) * max(y2 - y1, 0.0)))

    def to_json(self) -> dict[str, object]:
        return {
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
            "signals": {k: round(v, 4) for k, v in self.signals.items()},
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "explanations": list(self.explanations),
        }


@dataclass(frozen=True, eq=False)
class ImageVerdict:
    """Every face of one photo or frame; the photo's score is its highest face score (0 if no face)."""

    score: float
    faces: list[FaceVerdict]

    def to_json(self) -> dict[str, object]:
        return {"score": round(self.score, 4), "faces": [f.to_json() for f in self.faces]}


class Spotter:
    """Scores faces with the committed (or given) weights. Thread-safe: nothing changes after __init__."""

    def __init__(
        self, model: SpotModel | None = None, weights_path: Path | None = None, texture_net: TextureNet | None = None
    ) -> None:
        self.model = model if model is not None else load_model(weights_path)
        self.texture_net: TextureNet | None = None
        self.texture_fallback: float | None = None  # used only when the weights name the net but it is missing
        if TEXTURE_SIGNAL in self.model.names:
            self.texture_net = texture_net if texture_net is not None else get_texture_net()
            if self.texture_net is None:
                # Degrade, do not break the app: the net's average value, i.e. no push either way.
                warnings.warn(
                    "texture net weights/spot_texture.onnx missing: learned_texture left neutral", stacklevel=2
                )
                self.texture_fallback = float(self.model.mean[self.model.names.index(TEXTURE_SIGNAL)])

    def measure(self, image: ImageRGB, kps: Keypoints5) -> FaceSignals:
        """Every per-frame signal of one face: the hand-made ones, plus the texture net's when the model uses it."""
        signals = extract_signals(image, kps)
        if self.texture_net is not None and signals.crop is not None:
            value = float(self.texture_net.logits(signals.crop[None])[0])
        elif self.texture_fallback is not None:
            value = self.texture_fallback
        else:
            return signals
        return replace(signals, values={**signals.values, TEXTURE_SIGNAL: value})

    def score_signals(self, signals: FaceSignals) -> tuple[float, dict[str, float], float]:
        """Score, per-signal contributions and the baseline log-odds for already measured signals."""
        values = np.array([signals.values[name] for name in self.model.names], dtype=np.float64)[None, :]
        scales = np.array([signals.face_scale])
        contrib = self.model.contributions(values, scales)[0]
        baseline = float(self.model.baseline(scales)[0])
        score = float(self.model.predict(values, scales)[0])
        return score, {n: float(c) for n, c in zip(self.model.names, contrib, strict=True)}, baseline

    def score_face(self, image: ImageRGB, face: Face) -> FaceVerdict:
        """Verdict for one detected face (needs its 5 keypoints)."""
        check_image(image)
        # 1. Signals in the swapper's aligned frame.
        signals = self.measure(image, face.kps)
        # 2. The learned, calibrated decision and each signal's share of it.
        score, contributions, _ = self.score_signals(signals)
        # 3. What to show: sentences and a heatmap.
        heat, heat_box = face_heatmap(image.shape[:2], signals, contributions, score)
        return FaceVerdict(
            box=face.box,
            score=score,
            signals=dict(signals.values),
            contributions=contributions,
            explanations=explain_face(score, signals.values, contributions, signals.face_scale),
            heatmap=heat,
            heatmap_box=heat_box,
            face_scale=signals.face_scale,
            texture=signals.texture,
        )

    def score_image(self, image: ImageRGB, faces: Sequence[Face]) -> ImageVerdict:
        """Verdicts for every face; the photo's score is the highest face score."""
        verdicts = [self.score_face(image, face) for face in faces]
        return ImageVerdict(max((v.score for v in verdicts), default=0.0), verdicts)
