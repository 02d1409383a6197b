"""What every UI module needs: the shared services and the start-up choices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InputError
from pipelines.service import AppServices, identity_from_file
from pipelines.swap_engines import SourceIdentity
from pipelines.types import SwapSettings

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg")
CONSENT_LABEL = "This is me, or I have this person's permission to use their face"
NO_CONSENT = (
    "Please tick the box to confirm that this is your own face or that you have the person's permission. "
    "Example faces and your own webcam snapshot need no confirmation."
)


@dataclass(frozen=True)
class UiContext:
    services: AppServices


def example_faces() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES)


def swap_settings(engine: str, faces: str, mouth_mask: bool, colour: bool) -> SwapSettings:
    return SwapSettings(
        engine="classic" if engine == "classic" else "inswapper",
        faces="largest" if faces == "largest" else "all",
        mouth_mask=bool(mouth_mask),
        colour_correction=bool(colour),
    )


def api_identity(ctx: UiContext, source: str | None, example: str | None, consent: bool) -> SourceIdentity:
    """The source for API calls: an example by name, or an uploaded photo with consent (never kept)."""
    if example:
        for path in example_faces():
            if path.stem == example:
                return identity_from_file(ctx.services, path)
        names = ", ".join(p.stem for p in example_faces())
        raise InputError(f"There is no example face called '{example}' (examples: {names}).")
    if not source:
        raise InputError("Give a source face: an example name or a photo.")
    try:
        if not consent:
            raise InputError(NO_CONSENT)
        return identity_from_file(ctx.services, Path(source))
    finally:
        Path(source).unlink(missing_ok=True)
