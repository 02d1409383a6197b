"""Face analysis: one object that holds the shared detector, recognizer and landmark sessions.

`FaceAnalyzer` keeps no per-user state: every call takes an image and returns fresh immutable
`Face` records, so one instance serves every browser session and thread at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines import onnx_runtime
from pipelines.errors import InputError
from pipelines.recognition import ArcFaceRecognizer, Landmarker106, graph_normalises_input
from pipelines.scrfd import ScrfdDetector
from pipelines.types import AnalysisSettings, Face, ImageRGB, RuntimeSettings


@dataclass
class FaceAnalyzer:
    """Detector (required), recognizer and 106-point landmarker (optional), loaded once."""

    detector: ScrfdDetector
    recognizer: ArcFaceRecognizer | None = None
    landmarker: Landmarker106 | None = None
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)

    @classmethod
    def from_paths(
        cls,
        detector: Path | str,
        recognizer: Path | str | None = None,
        landmarker: Path | str | None = None,
        settings: AnalysisSettings | None = None,
        runtime: RuntimeSettings | None = None,
        warm_up: bool = True,
    ) -> FaceAnalyzer:
        """Create the sessions from ONNX files (already verified by the caller) and warm them up."""
        sessions = []
        det = ScrfdDetector.from_path(detector, runtime)
        sessions.append(det.session)
        rec = None
        if recognizer is not None:
            rec_session = onnx_runtime.create_session(recognizer, runtime)
            rec = ArcFaceRecognizer(rec_session, raw_pixels=graph_normalises_input(recognizer))
            sessions.append(rec_session)
        lmk = None
        if landmarker is not None:
            lmk_session = onnx_runtime.create_session(landmarker, runtime)
            lmk = Landmarker106(lmk_session, raw_pixels=graph_normalises_input(landmarker))
            sessions.append(lmk_session)
        analyzer = cls(det, rec, lmk, settings or AnalysisSettings())
        if warm_up:
            for session in sessions:
                onnx_runtime.warm_up(session, dynamic_size=analyzer.settings.det_size)
        return analyzer

    def detect(self, image: ImageRGB, max_faces: int | None = None, det_size: int | None = None) -> list[Face]:
        """Faces in the image, largest first, without embeddings.

        `det_size`: the detector's input side for this call (e.g. smaller for the live view, where faces
        are close to the camera); default `settings.det_size`.
        """
        check_image(image)
        s = self.settings
        found = self.detector.detect(image, det_size or s.det_size, s.det_threshold, s.nms_threshold)
        faces = [Face(tuple(found.boxes[i]), found.kps[i], float(found.scores[i])) for i in range(len(found))]
        faces = [f for f in faces if f.size >= s.min_face_size]
        faces.sort(key=lambda f: f.area, reverse=True)
        limit = s.max_faces if max_faces is None else max_faces
        return faces[:limit] if limit > 0 else faces

    def analyze(self, image: ImageRGB, max_faces: int | None = None, landmarks: bool = False) -> list[Face]:
        """Faces, largest first, with embeddings when a recognizer is loaded (and 106 landmarks if asked)."""
        faces = self.detect(image, max_faces)
        if self.recognizer is not None:
            faces = [f.with_embedding(self.recognizer.embed(image, f.kps)) for f in faces]
        if landmarks and self.landmarker is not None:
            faces = [f.with_landmarks(self.landmarker.landmarks(image, f.box)) for f in faces]
        return faces

    def embed(self, image: ImageRGB, face: Face) -> Face:
        """The same face with its embedding (requires a recognizer)."""
        if self.recognizer is None:
            raise RuntimeError("no recognizer loaded")
        return face.with_embedding(self.recognizer.embed(image, face.kps))


def check_image(image: np.ndarray) -> None:
    """Refuse arrays that are not RGB uint8 images, with a message for the user."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise InputError(f"Expected an RGB photo (height x width x 3, 8-bit); got an array of shape {shape}.")
    if image.shape[0] < 16 or image.shape[1] < 16:
        raise InputError(f"The image is too small ({image.shape[1]}x{image.shape[0]} pixels) to contain a face.")


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (both assumed L2-normalised)."""
    return float(np.dot(np.asarray(a, np.float32).reshape(-1), np.asarray(b, np.float32).reshape(-1)))
