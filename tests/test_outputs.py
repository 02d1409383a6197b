"""Output policy: marking, signing, and deleting what users made after a while."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from pipelines.outputs import OutputPolicy, mark_frame, new_output_dir, publish_photo, sweep_outputs
from pipelines.provenance import WatermarkPayload, label_present, read_provenance, read_watermark
from tests.model_builders.detector import face_at


def policy(tmp_path: Path, label: bool = True) -> OutputPolicy:
    return OutputPolicy(label, tmp_path / "credentials", tmp_path / "outputs", keep_seconds=60)


def test_marked_frames_carry_the_label_and_the_watermark(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 30, (480, 640, 3)), 0, 255).astype(np.uint8)
    _, kps = face_at(320, 240, 220)
    payload = WatermarkPayload.new()
    marked = mark_frame(image, [kps], payload, policy(tmp_path))
    assert label_present(marked)
    reading = read_watermark(marked, [kps])
    assert reading.found and reading.payload == payload
    unlabelled = mark_frame(image, [kps], payload, policy(tmp_path, label=False))
    assert not label_present(unlabelled)


def test_published_photos_are_signed_and_expire(tmp_path: Path) -> None:
    rules = policy(tmp_path)
    folder = new_output_dir(rules)
    signed = publish_photo(np.full((64, 64, 3), 90, np.uint8), folder, rules)
    assert read_provenance(signed).state == "valid"
    assert sorted(p.name for p in folder.iterdir()) == ["swapped.jpg"]
    assert sweep_outputs(rules) == 0  # still fresh
    old = time.time() - 120
    os.utime(folder, (old, old))
    assert sweep_outputs(rules) == 1 and not folder.exists()
