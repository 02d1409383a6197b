"""Words for the detector panel: the score, what drove it, and what provenance says."""

from __future__ import annotations

from typing import Any

from pipelines.spot import THRESHOLD, ImageVerdict

SIGNAL_NAMES = {
    "detail": "detail inside vs around the face",
    "boundary": "blending edge of a square mask",
    "colour": "colour and lighting mismatch",
    "flicker": "texture flicker over time",
}


def score_line(score: float | None) -> str:
    """The number a class reads first (also what the browser test reads from #spot-score)."""
    if score is None:
        return "Swap score: – (no face scored yet)"
    verdict = "looks SWAPPED" if score >= THRESHOLD else "looks real"
    return f"Swap score: {score:.2f} ({score * 100:.0f}%) — {verdict}"


def verdict_markdown(verdict: ImageVerdict | None) -> str:
    """Per face: score, the sentences that explain it, and the strongest signal contributions."""
    if verdict is None or not verdict.faces:
        return "_No face to score._"
    lines = []
    for number, face in enumerate(verdict.faces, 1):
        verdict_word = "looks swapped" if face.score >= THRESHOLD else "looks real"
        lines.append(f"**Face {number}: {face.score * 100:.0f}% likely swapped ({verdict_word})**")
        lines.extend(f"- {sentence}" for sentence in face.explanations)
        strongest = sorted(face.contributions.items(), key=lambda item: -abs(item[1]))[:4]
        if strongest:
            pushes = ", ".join(f"`{name}` {value:+.2f}" for name, value in strongest)
            lines.append(f"  <small>Signal pushes (+ towards swapped): {pushes}</small>")
    lines.append(
        "\n<small>0.5 is the decision threshold. The detector was trained here on simulated swaps; it can be "
        "wrong, so treat it as evidence, not proof.</small>"
    )
    return "\n".join(lines)


def provenance_markdown(info: dict[str, Any]) -> str:
    prov, mark = info.get("provenance", {}), info.get("watermark", {})
    state = str(prov.get("state", "none"))
    badge = {"trusted": "Trusted ✔", "valid": "Valid (unknown signer)", "invalid": "INVALID ✘", "none": "None"}
    lines = [f"**Content Credentials (C2PA): {badge.get(state, state)}** — {prov.get('explanation', '')}"]
    if prov.get("actions"):
        lines.append(f"  <small>Recorded actions: {', '.join(prov['actions'])}</small>")
    if mark.get("found"):
        lines.append(f"**Invisible watermark: found** — {mark.get('payload')}.")
    else:
        lines.append("**Invisible watermark: not found** — this tool's mark is absent (other tools leave none).")
    return "\n\n".join(lines)
