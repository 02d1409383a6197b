"""Start `python app.py` in a subprocess on a free loopback port and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float:
        """CPU time the app's process has used so far (all its threads; Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def run_app(args: list[str], env: dict[str, str], log_path: Path, timeout: float = 120) -> Iterator[RunningApp]:
    port = free_port()
    full_env = {**os.environ, **OFFLINE, **env, "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "app.py", *args], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    url = f"http://127.0.0.1:{port}"
    app = RunningApp(url, process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"app exited with {process.returncode}:\n{app.log()}")
            try:
                if requests.get(f"{url}/config", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(f"app did not answer within {timeout} s:\n{app.log()}")
        yield app
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def stand_in_model_args(folder: Path, detector: Path | None = None, busy_convs: int = 0) -> list[str]:
    """`app.py` flags for tiny stand-in models: a detector that always finds one face (unless a real
    `detector` is given), an ArcFace-shaped recognizer and an inswapper-shaped swapper (so the whole app
    runs on any machine, offline); `busy_convs` makes the swapper as slow as a real one (see
    `build_tiny_inswapper`)."""
    from tests.model_builders.detector import build_fake_scrfd, face_at
    from tests.model_builders.recognizer import build_fake_arcface
    from tests.model_builders.swapper import build_tiny_inswapper

    detector = detector or build_fake_scrfd(folder / "det.onnx", [face_at(320, 300, 220)])
    recognizer = build_fake_arcface(folder / "rec.onnx")
    swapper = build_tiny_inswapper(folder / "swap.onnx", busy_convs=busy_convs)
    return ["--no-download", "--detector", str(detector), "--recognizer", str(recognizer), "--swapper", str(swapper)]


@contextmanager
def run_stand_in_app(
    folder: Path, detector: Path | None = None, busy_convs: int = 0, extra_args: tuple[str, ...] = ()
) -> Iterator[RunningApp]:
    """The app on stand-in models (see `stand_in_model_args`), with its own empty model folder."""
    env = {"SWAPSPOT_MODEL_DIR": str(folder / "weights")}
    args = [*stand_in_model_args(folder, detector, busy_convs), *extra_args]
    with run_app(args, env, folder / "app.log") as running:
        yield running
