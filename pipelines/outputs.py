"""Responsible outputs: every swapped photo, clip frame and live frame is labelled and watermarked,
and every downloadable file carries signed C2PA Content Credentials.

`OutputPolicy` is decided by whoever runs the app (environment), never by the page. Files written for a
user go to a private temporary folder and are removed by `sweep_outputs` after `keep_seconds`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.store import model_root
from pipelines.image_io import save_image
from pipelines.provenance import (
    WatermarkPayload,
    add_visible_label,
    embed_watermark,
    sign_media,
    visible_label_enabled,
)
from pipelines.types import Face, ImageRGB, Keypoints5

OUTPUT_ROOT_NAME = "swapspot-outputs"
KEEP_SECONDS = 15 * 60  # outputs (and their unsigned working copies) are deleted after 15 minutes


@dataclass(frozen=True)
class OutputPolicy:
    """How outputs are marked. Built once at start from the environment of whoever runs the app."""

    visible_label: bool = True  # SWAPSPOT_VISIBLE_LABEL=0 switches it off (locally only, never from the page)
    credentials_dir: Path = field(default_factory=lambda: model_root() / "demo-credentials")
    output_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / OUTPUT_ROOT_NAME)
    keep_seconds: float = KEEP_SECONDS

    @classmethod
    def from_environment(cls) -> OutputPolicy:
        return cls(visible_label=visible_label_enabled())


def mark_frame(
    image: ImageRGB, faces: Sequence[Face | Keypoints5], payload: WatermarkPayload, policy: OutputPolicy
) -> ImageRGB:
    """Watermark the swapped faces, then add the visible label (in a corner, away from the faces' marks)."""
    marked = embed_watermark(image, list(faces), payload) if len(faces) else image
    return add_visible_label(marked) if policy.visible_label else marked


def new_output_dir(policy: OutputPolicy) -> Path:
    """A fresh private folder for one request's files (and an opportunity to sweep old ones)."""
    sweep_outputs(policy)
    folder = policy.output_root / uuid.uuid4().hex
    folder.mkdir(parents=True, mode=0o700)
    return folder


def sweep_outputs(policy: OutputPolicy, now: float | None = None) -> int:
    """Delete request folders older than `keep_seconds`; returns how many were removed."""
    now = time.time() if now is None else now
    if not policy.output_root.is_dir():
        return 0
    removed = 0
    for folder in policy.output_root.iterdir():
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > policy.keep_seconds:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def publish_photo(
    image: ImageRGB, folder: Path, policy: OutputPolicy, parent: Path | None = None, stem: str = "swapped"
) -> Path:
    """Save the (already marked) photo as JPEG and sign it; returns the signed file."""
    unsigned = save_image(image, folder / f".{stem}-unsigned.jpg")
    signed = sign_media(unsigned, folder / f"{stem}.jpg", parent_path=parent, credentials=policy.credentials_dir)
    unsigned.unlink(missing_ok=True)
    return signed


def publish_clip(
    encoded: Path, folder: Path, policy: OutputPolicy, parent: Path | None = None, stem: str = "swapped"
) -> Path:
    """Sign an encoded MP4 into its final name; the unsigned encode is removed."""
    signed = sign_media(encoded, folder / f"{stem}.mp4", parent_path=parent, credentials=policy.credentials_dir)
    if encoded != signed:
        encoded.unlink(missing_ok=True)
    return signed


def start_sweeper(policy: OutputPolicy, every_s: float = 300.0) -> threading.Thread:
    """A daemon thread that deletes expired outputs every `every_s` seconds for as long as the app runs."""

    def loop() -> None:
        while True:
            sweep_outputs(policy)
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="output-sweeper", daemon=True)
    thread.start()
    return thread
