"""What the detector shows people: plain-language sentences, a heatmap and an overlay picture.

Sentences are written for a class of teenagers: what was measured, and why a face swap would leave it.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.spot.signals import FRAME_SIZE, GRID, OVAL_GRID, REGIONS, FaceSignals
from pipelines.types import ImageRGB

MENTION = 0.15
"""Contributions (log-odds) smaller than this are not worth a sentence."""
MAX_SENTENCES = 5

SENTENCES: dict[str, tuple[str, str]] = {
    # name: (when it points to a swap, when it points to a real photo)
    "detail_vs_surroundings": (
        "The face is smoother than the hair and background around it: swap tools paint the face at only "
        "128 x 128 pixels and stretch it, so fine detail goes missing.",
        "The face has as much fine detail as the hair and background around it, like a normal camera photo.",
    ),
    "detail_vs_edge": (
        "The face is blurrier than the pixels right next to it, as if a smaller picture had been stretched onto it.",
        "The face is as sharp as the pixels right next to it.",
    ),
    "fine_vs_coarse_detail": (
        "The tiniest details (pores, single hairs) are weaker in the face than elsewhere, while larger shapes "
        "are fine: a sign of an enlarged low-resolution face.",
        "The tiniest details in the face are as strong as elsewhere in the photo.",
    ),
    "fine_vs_coarse_inside": (
        "Inside the face the finest texture is faint compared with the bigger shapes, which is typical of a "
        "generated face.",
        "Inside the face the finest texture looks natural.",
    ),
    "noise_vs_surroundings": (
        "The face has less camera grain than the rest of the photo: generated faces come out too clean.",
        "The camera grain looks the same on the face and around it.",
    ),
    "boundary_detail_step": (
        "Sharpness changes suddenly along a square-shaped line around the face, exactly where a swap tool "
        "blends its face in.",
        "There is no sudden change in sharpness where a swap tool would blend its face in.",
    ),
    "boundary_fine_step": (
        "Just inside the square where a swap tool blends, the finest detail drops away.",
        "The finest detail stays the same across the line where a swap tool would blend.",
    ),
    "oval_detail_step": (
        "Sharpness jumps at the outline of the face, where a cut-and-paste face would be blended.",
        "Sharpness stays consistent across the outline of the face.",
    ),
    "oval_noise_step": (
        "The camera grain changes at the outline of the face, as if the face came from another picture.",
        "The camera grain stays the same across the outline of the face.",
    ),
    "oval_fine_step": (
        "The finest detail fades just inside the outline of the face compared with just outside it.",
        "The finest detail is the same just inside and just outside the outline of the face.",
    ),
    "full_res_detail": (
        "Looking at the photo's full resolution, the middle of the face lacks the finest detail that the hair "
        "and background have: it looks copied in from a smaller picture.",
        "At the photo's full resolution, the middle of the face has as much fine detail as its surroundings.",
    ),
    "context_sharpness": (
        "How sharp the whole photo is sets what a real face in it should look like; here that counts towards a swap.",
        "How sharp the whole photo is sets what a real face in it should look like; here that counts towards real.",
    ),
    "context_fine_vs_coarse": (
        "How much blur or compression the whole photo has was taken into account; here it counts towards a swap.",
        "How much blur or compression the whole photo has was taken into account; here it counts towards real.",
    ),
    "oval_colour_step": (
        "The colour changes suddenly at the outline of the face, like a face pasted from another photo.",
        "The colours flow naturally across the outline of the face.",
    ),
    "boundary_colour_step": (
        "The colour jumps along the edge of the square where a swap tool blends its face in.",
        "No colour jump along the edge where a swap tool would blend.",
    ),
    "boundary_light_step": (
        "The brightness jumps along the edge of the square where a swap tool blends its face in.",
        "No brightness jump along the edge where a swap tool would blend.",
    ),
    "learned_texture": (
        "A small neural network trained on real faces and blended faces finds the look of a pasted-in face "
        "here (its outline, shading or texture do not fit the head around it).",
        "A small neural network trained on real faces and blended faces sees nothing pasted-in about this face.",
    ),
    "colour_mismatch": (
        "The face's colour or lighting does not quite match the neck, ears and forehead around it.",
        "The face's colour and lighting match its surroundings.",
    ),
}

DETAIL_SIGNALS = (
    "detail_vs_surroundings",
    "detail_vs_edge",
    "fine_vs_coarse_detail",
    "fine_vs_coarse_inside",
    "noise_vs_surroundings",
    "full_res_detail",
)
SQUARE_SIGNALS = ("boundary_detail_step", "boundary_fine_step", "boundary_colour_step", "boundary_light_step")
OVAL_SIGNALS = (
    "oval_detail_step",
    "oval_noise_step",
    "oval_fine_step",
    "oval_colour_step",
    "colour_mismatch",
    "learned_texture",  # the net's evidence is drawn where blends sit: the outline of the face
)


def signal_sentence(name: str, contribution: float) -> str:
    """One plain-language sentence for a signal, depending on which way it pushed the score."""
    towards_swap, towards_real = SENTENCES.get(name, (f"{name} points to a swap.", f"{name} looks normal."))
    return towards_swap if contribution > 0 else towards_real


def explain_face(
    score: float, values: dict[str, float], contributions: dict[str, float], face_scale: float
) -> list[str]:
    """A summary sentence, then one sentence per signal that mattered (largest push first)."""
    if score >= 0.8:
        lines = [f"This face very likely was swapped (score {score:.2f} of 1)."]
    elif score >= 0.5:
        lines = [f"This face might have been swapped (score {score:.2f} of 1)."]
    elif score >= 0.3:
        lines = [f"This face is probably real, but not certainly (score {score:.2f} of 1)."]
    else:
        lines = [f"This face looks like a real photo (score {score:.2f} of 1)."]
    # Signals agreeing with the verdict first (strongest first), then the strongest one against it.
    sign = 1.0 if score >= 0.5 else -1.0
    ranked = sorted(contributions.items(), key=lambda kv: sign * kv[1], reverse=True)
    agreeing = [(n, v) for n, v in ranked if sign * v >= MENTION and n in values][: MAX_SENTENCES - 1]
    against = [(n, v) for n, v in ranked[::-1] if -sign * v >= MENTION and n in values][:1]
    lines += [signal_sentence(n, v) for n, v in agreeing]
    for name, value in against:
        sentence = signal_sentence(name, value)
        prefix = "One thing looked normal: " if sign > 0 else "One thing looked odd: "
        lines.append(prefix + sentence[0].lower() + sentence[1:])
    if face_scale < 0.3:
        lines.append("The face is small in this picture, so a swap leaves fewer traces and the score is less sure.")
    return lines


def _evidence_grid(signals: FaceSignals, contributions: dict[str, float]) -> NDArray[np.float32]:
    """Evidence on the analysis block grid: smooth patches, blended square edge, blended oval edge."""

    def push(names: tuple[str, ...]) -> float:
        return float(np.clip(sum(max(contributions.get(n, 0.0), 0.0) for n in names) / 1.5, 0.0, 1.0))

    centres = (np.arange(GRID) + 0.5) * 4.0 - 32.0
    u, v = np.meshgrid(centres, centres)
    cheb = np.maximum(np.abs(u - 64.0), np.abs(v - 64.0))
    inside = cheb <= 60.0
    smooth = 0.7 * np.clip((0.5 - signals.texture) / 3.0, 0.0, 1.0) * inside
    square_band = np.exp(-(((cheb - 58.0) / 6.0) ** 2))
    oval_band = np.exp(-(((OVAL_GRID - 0.97) / 0.12) ** 2))
    evidence = np.maximum.reduce(
        [push(DETAIL_SIGNALS) * smooth, push(SQUARE_SIGNALS) * square_band, push(OVAL_SIGNALS) * oval_band]
    )
    assert REGIONS["inner"].shape == evidence.shape
    return np.asarray(cv2.GaussianBlur(evidence.astype(np.float32), (0, 0), 1.0), dtype=np.float32)


def face_heatmap(
    image_shape: tuple[int, ...],
    signals: FaceSignals,
    contributions: dict[str, float],
    score: float,
    max_side: int = 192,
) -> tuple[NDArray[np.float32], tuple[int, int, int, int]]:
    """Evidence heatmap over the face's region of the image, and that region (x1, y1, x2, y2).

    The map is at most `max_side` pixels a side; resize it to the region to overlay it.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    grid = _evidence_grid(signals, contributions) * float(np.clip(score * 1.5, 0.15, 1.0))
    # 1. The region of the image the analysis frame covers.
    inv = cv2.invertAffineTransform(signals.matrix)
    corners = np.array([[0, 0], [FRAME_SIZE, 0], [0, FRAME_SIZE], [FRAME_SIZE, FRAME_SIZE]], np.float64)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    x1, y1 = (int(max(np.floor(c), 0)) for c in pts.min(axis=0))
    x2, y2 = int(min(np.ceil(pts[:, 0].max()), width)), int(min(np.ceil(pts[:, 1].max()), height))
    if x2 <= x1 or y2 <= y1:
        return np.zeros((1, 1), np.float32), (0, 0, 0, 0)
    # 2. Warp the grid into that region at a modest resolution.
    ratio = min(1.0, max_side / max(x2 - x1, y2 - y1))
    out_w, out_h = max(int((x2 - x1) * ratio), 1), max(int((y2 - y1) * ratio), 1)
    to_image = np.array([[1.0 / ratio, 0.0, x1], [0.0, 1.0 / ratio, y1], [0.0, 0.0, 1.0]])
    to_grid = np.vstack([signals.matrix, [0.0, 0.0, 1.0]]) @ to_image
    to_grid[:2] *= GRID / FRAME_SIZE
    to_grid[:2, 2] -= 0.5  # grid pixel centres
    heat = cv2.warpAffine(grid, to_grid[:2], (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return np.clip(heat, 0.0, 1.0).astype(np.float32), (x1, y1, x2, y2)


def score_colour(score: float) -> tuple[int, int, int]:
    """Green (real) to red (swapped), RGB."""
    t = float(np.clip(score, 0.0, 1.0))
    return (int(255 * min(1.0, 2 * t)), int(255 * min(1.0, 2 * (1 - t))), 40)


def render_overlay(image: ImageRGB, verdict: object, alpha: float = 0.55) -> ImageRGB:
    """The photo with each face's heatmap, box and score drawn on it (a new RGB image).

    `verdict` is an `ImageVerdict` or a single `FaceVerdict`.
    """
    faces = getattr(verdict, "faces", None)
    faces = [verdict] if faces is None else faces
    out = image.astype(np.float32)
    height, width = image.shape[:2]
    thickness = max(2, int(round(max(height, width) / 400)))
    # 1. Heatmaps, coloured with a jet palette and blended where the evidence is.
    for face in faces:
        x1, y1, x2, y2 = face.heatmap_box
        if x2 <= x1 or y2 <= y1:
            continue
        heat = cv2.resize(face.heatmap, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1].astype(np.float32)
        weight = (alpha * np.clip(heat, 0.0, 1.0))[:, :, None]
        out[y1:y2, x1:x2] = out[y1:y2, x1:x2] * (1 - weight) + colour * weight
    result = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    # 2. Boxes and scores.
    for face in faces:
        bx1, by1, bx2, by2 = (int(round(v)) for v in face.box)
        colour_rgb = score_colour(face.score)
        cv2.rectangle(result, (bx1, by1), (bx2, by2), colour_rgb, thickness)
        label = f"swap? {face.score:.2f}"
        scale = max(0.5, (bx2 - bx1) / 250.0)
        cv2.putText(result, label, (bx1, max(by1 - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour_rgb, thickness)
    return result
