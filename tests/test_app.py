"""The app as a user starts it: --help, first start offline, the port setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

from tests.app_server import ROOT, run_app


def test_help_answers_without_loading_anything() -> None:
    result = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--source", "--detector", "--recognizer", "--swapper", "--engine", "--no-download"):
        assert flag in result.stdout


def test_first_start_offline_opens_the_page_and_says_what_is_missing(tmp_path: Path) -> None:
    env = {"SWAPSPOT_MODEL_DIR": str(tmp_path / "weights")}
    with run_app([], env, tmp_path / "app.log") as app:
        config = requests.get(f"{app.url}/config", timeout=10).json()
        page_text = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"])
        assert "Some models are missing" in page_text
        assert "python -m models fetch inswapper_128" in page_text
        assert str(tmp_path / "weights" / "inswapper_128") in page_text
        assert requests.get(app.url, timeout=10).status_code == 200
        log = app.log()
    # It tried to download, failed politely, and said where to put the files by hand.
    assert "Could not download inswapper_128.onnx" in log
    assert "Traceback" not in log
