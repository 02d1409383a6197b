"""The running app through gradio_client: swap_image, swap_video (with progress), consent, swap_frame for
two sessions at once, check_media. Tiny stand-in models, so this runs on any machine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from gradio_client import Client, handle_file

from pipelines.image_io import load_image
from pipelines.provenance import label_present, read_provenance
from tests.app_server import ROOT, RunningApp, run_stand_in_app
from tests.media_builders import ClipSpec, make_clip

EXAMPLES = ROOT / "examples"
OPTIONS = ("inswapper", "all", False, True)  # engine, faces, mouth mask, colour correction


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with run_stand_in_app(tmp_path_factory.mktemp("app")) as running:
        yield running


def client(app: RunningApp) -> Client:
    return Client(app.url, verbose=False)


def test_swap_image_returns_a_labelled_signed_photo(app: RunningApp, tmp_path: Path) -> None:
    image_path, file_path, summary = client(app).predict(
        None, "astronaut", False, handle_file(str(EXAMPLES / "cameraman.png")), *OPTIONS, api_name="/swap_image"
    )
    swapped = load_image(image_path)
    original = load_image(EXAMPLES / "cameraman.png")
    assert swapped.shape == original.shape
    assert summary["faces_swapped"] == 1 and summary["watermark"].startswith("made by Swap & Spot")
    assert label_present(swapped)
    assert not np.array_equal(swapped, original)
    report = read_provenance(file_path)
    assert report.state == "valid" and "c2pa.edited" in report.actions
    assert 0.0 <= summary["detector"]["score"] <= 1.0


def test_uploaded_source_without_consent_is_refused(app: RunningApp) -> None:
    with pytest.raises(Exception, match="permission"):
        client(app).predict(
            handle_file(str(EXAMPLES / "astronaut.png")),
            "",
            False,
            handle_file(str(EXAMPLES / "cameraman.png")),
            *OPTIONS,
            api_name="/swap_image",
        )
    # With consent the same request works.
    _, _, summary = client(app).predict(
        handle_file(str(EXAMPLES / "astronaut.png")),
        "",
        True,
        handle_file(str(EXAMPLES / "cameraman.png")),
        *OPTIONS,
        api_name="/swap_image",
    )
    assert summary["faces_swapped"] == 1


def test_swap_video_keeps_audio_and_reports_progress(app: RunningApp, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(width=640, height=480, seconds=3.0, audio_codec="aac"))
    job = client(app).submit(None, "astronaut", False, handle_file(str(clip)), *OPTIONS, api_name="/swap_video")
    progress_seen = 0
    while not job.done():
        status = job.status()
        if status.progress_data:
            progress_seen += 1
        time.sleep(0.1)
    video, summary = job.result()
    path = Path(video["video"] if isinstance(video, dict) else video)
    assert summary["frames"] == 75 and summary["audio"] == "copied"
    assert progress_seen > 0
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 75
    assert summary["frames_with_swaps"] == 75
    assert all(label_present(frame) for frame in frames)  # the visible label is on every swapped frame
    assert read_provenance(path).state == "valid"


def test_two_sessions_keep_their_own_source(app: RunningApp) -> None:
    frame = str(EXAMPLES / "astronaut.png")
    first, second = client(app), client(app)
    first.predict(None, "astronaut", False, api_name="/choose_source")
    second.predict(None, "cameraman", False, api_name="/choose_source")
    outputs: dict[str, list[np.ndarray]] = {"astronaut": [], "cameraman": []}
    for _ in range(3):
        for name, session in (("astronaut", first), ("cameraman", second)):
            image, detail = session.predict(handle_file(frame), *OPTIONS, api_name="/swap_frame")
            assert detail["source"] == name
            outputs[name].append(load_image(image))
    assert not np.array_equal(outputs["astronaut"][-1], outputs["cameraman"][-1])
    for name in outputs:  # each session's swaps of the same frame agree with each other
        assert all(np.abs(o.astype(int) - outputs[name][-1].astype(int)).mean() < 2.0 for o in outputs[name][1:])


def test_check_media_reads_back_the_apps_own_output(app: RunningApp) -> None:
    _, file_path, _ = client(app).predict(
        None, "astronaut", False, handle_file(str(EXAMPLES / "cameraman.png")), *OPTIONS, api_name="/swap_image"
    )
    result = client(app).predict(handle_file(file_path), api_name="/check_media")
    details = result[4]
    assert 0.0 <= details["score"] <= 1.0
    assert details["provenance"]["state"] in ("valid", "trusted")
    assert details["watermark"]["found"] is True
