"""Model registry, verified downloads (mirrors, resume, checksum), safe extraction and the models CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from models import store
from models.registry import REGISTRY, Download, ModelFile, ModelSet, get_model_set
from models.roles import resolve_role
from pipelines.errors import ModelError
from tests.http_server import FileServer, serve

ROOT = Path(__file__).resolve().parent.parent
INSWAPPER_SHA = "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_models_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "models", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SWAPSPOT_MODEL_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("SWAPSPOT_MODEL_MIRROR", raising=False)
    store._cached_sha256.cache_clear()
    return tmp_path / "weights"


def single_file_set(payload: bytes, urls: tuple[str, ...]) -> ModelSet:
    download = Download("tiny.onnx", sha(payload), len(payload), urls)
    return ModelSet(
        "tiny", "test", "test licence", download, (ModelFile("tiny.onnx", sha(payload), len(payload)),), False
    )


# --- Registry and CLI --------------------------------------------------------------------------


def test_registry_pins_the_original_inswapper() -> None:
    inswapper = get_model_set("inswapper_128")
    assert inswapper.download.sha256 == INSWAPPER_SHA
    assert inswapper.download.size == 554_253_681
    assert len(inswapper.download.urls) >= 3
    buffalo = {f.filename for f in get_model_set("buffalo_l").files}
    assert {"det_10g.onnx", "w600k_r50.onnx", "2d106det.onnx"} <= buffalo
    assert all(len(f.sha256) == 64 for m in REGISTRY for f in m.files)


def test_models_list_json(model_dir: Path) -> None:
    result = run_models_cli("list", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    by_name = {entry["name"]: entry for entry in listing}
    assert {"buffalo_l", "buffalo_s", "inswapper_128"} <= set(by_name)
    entry = by_name["inswapper_128"]
    assert "non-commercial" in entry["license"]
    assert entry["present"] is False
    (swapper,) = entry["files"]
    assert swapper["sha256"] == INSWAPPER_SHA and swapper["size"] == 554_253_681
    assert swapper["path"] == str(model_dir.resolve() / "inswapper_128" / "inswapper_128.onnx")
    assert swapper["urls"][0].startswith("https://")


def test_models_fetch_offline_fails_fast_with_urls_and_manual_path(model_dir: Path) -> None:
    offline = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    started = time.monotonic()
    result = run_models_cli("fetch", "inswapper_128", env=offline)
    assert time.monotonic() - started < 60
    assert result.returncode != 0
    for url in get_model_set("inswapper_128").download.urls:
        assert url in result.stderr
    assert str(model_dir.resolve() / "inswapper_128" / "inswapper_128.onnx") in result.stderr
    assert "Traceback" not in result.stderr
    assert not (model_dir / "inswapper_128" / "inswapper_128.onnx").exists()


def test_models_verify_names_a_tampered_file_and_loading_refuses_it(model_dir: Path) -> None:
    target = model_dir / "inswapper_128" / "inswapper_128.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"definitely not the swapper")
    result = run_models_cli("verify", "inswapper_128")
    assert result.returncode != 0
    assert str(target.resolve()) in result.stderr and "checksum" in result.stderr
    with pytest.raises(ModelError, match="does not match its published checksum"):
        resolve_role("swapper")


def test_models_verify_names_missing_files(model_dir: Path) -> None:
    result = run_models_cli("verify")
    assert result.returncode != 0
    assert "det_10g.onnx" in result.stderr and "missing" in result.stderr


def test_role_override_is_loaded_unverified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: Path) -> None:
    local = tmp_path / "my_detector.onnx"
    local.write_bytes(b"x")
    monkeypatch.setenv("SWAPSPOT_DETECTOR", str(local))
    resolved = resolve_role("detector")
    assert resolved.path == local.resolve() and not resolved.verified
    assert "unverified" in resolved.status
    flag = tmp_path / "flag.onnx"
    flag.write_bytes(b"y")
    assert resolve_role("detector", flag).origin == "--detector flag"
    with pytest.raises(ModelError, match="does not exist"):
        resolve_role("detector", tmp_path / "nope.onnx")
    listing = run_models_cli("list", env={"SWAPSPOT_DETECTOR": str(local)})
    assert "unverified" in listing.stdout


# --- Downloads ---------------------------------------------------------------------------------


def test_download_tries_mirrors_in_order(model_dir: Path) -> None:
    payload = os.urandom(300_000)
    with serve(FileServer(files={"/good/tiny.onnx": payload})) as server:
        urls = (f"{server.base_url}/missing/tiny.onnx", f"{server.base_url}/good/tiny.onnx")
        path = store.download_verified(single_file_set(payload, urls).download, model_dir, progress=None)
    assert path.read_bytes() == payload
    assert [r[0] for r in server.requests] == ["/missing/tiny.onnx", "/good/tiny.onnx"]
    assert not (model_dir / "tiny.onnx.part").exists()


def test_download_resumes_a_partial_file(model_dir: Path) -> None:
    payload = os.urandom(400_000)
    model_dir.mkdir(parents=True)
    (model_dir / "tiny.onnx.part").write_bytes(payload[:150_000])
    with serve(FileServer(files={"/tiny.onnx": payload})) as server:
        download = single_file_set(payload, (f"{server.base_url}/tiny.onnx",)).download
        path = store.download_verified(download, model_dir, progress=None)
    assert path.read_bytes() == payload
    assert server.requests == [("/tiny.onnx", "bytes=150000-")]


def test_download_after_a_dropped_connection_resumes_on_the_next_mirror(model_dir: Path) -> None:
    payload = os.urandom(500_000)
    with serve(FileServer(files={"/a/tiny.onnx": payload, "/b/tiny.onnx": payload}, truncate_after=200_000)) as server:
        urls = (f"{server.base_url}/a/tiny.onnx", f"{server.base_url}/b/tiny.onnx")
        path = store.download_verified(single_file_set(payload, urls).download, model_dir, progress=None)
    assert path.read_bytes() == payload
    second_path, second_range = server.requests[1]
    assert second_path == "/b/tiny.onnx"
    assert second_range is not None and 0 < int(second_range[6:-1]) <= 200_000


def test_download_with_wrong_bytes_never_appears_under_the_final_name(model_dir: Path) -> None:
    payload = os.urandom(100_000)
    tampered = bytearray(payload)
    tampered[5000] ^= 0xFF
    with serve(FileServer(files={"/tiny.onnx": bytes(tampered)})) as server:
        download = single_file_set(payload, (f"{server.base_url}/tiny.onnx",)).download
        with pytest.raises(ModelError) as error:
            store.download_verified(download, model_dir, progress=None)
    message = str(error.value)
    assert "sha256" in message and f"{server.base_url}/tiny.onnx" in message
    assert str(model_dir / "tiny.onnx") in message
    assert not (model_dir / "tiny.onnx").exists() and not (model_dir / "tiny.onnx.part").exists()


def test_extra_mirror_from_the_environment_is_tried_first(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(10_000)
    with serve(FileServer(files={"/classroom/tiny.onnx": payload})) as server:
        monkeypatch.setenv("SWAPSPOT_MODEL_MIRROR", f"{server.base_url}/classroom/")
        download = single_file_set(payload, ("http://127.0.0.1:9/unreachable/tiny.onnx",)).download
        store.download_verified(download, model_dir, progress=None)
    assert server.requests[0][0] == "/classroom/tiny.onnx"


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def archive_set(archive: bytes, members: dict[str, bytes], urls: tuple[str, ...]) -> ModelSet:
    files = tuple(ModelFile(name, sha(data), len(data)) for name, data in members.items())
    return ModelSet(
        "pack", "test pack", "test licence", Download("pack.zip", sha(archive), len(archive), urls), files, False
    )


def test_ensure_model_downloads_extracts_and_verifies_an_archive(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = {"det.onnx": os.urandom(5000), "rec.onnx": os.urandom(7000)}
    archive = make_zip({"pack/det.onnx": members["det.onnx"], "rec.onnx": members["rec.onnx"], "readme.txt": b"hi"})
    with serve(FileServer(files={"/pack.zip": archive})) as server:
        pack = archive_set(archive, members, (f"{server.base_url}/pack.zip",))
        monkeypatch.setattr(store, "get_model_set", lambda name: pack)
        folder = store.ensure_model("pack", progress=None)
        again = store.ensure_model("pack", progress=None)  # already complete: no second request
    assert folder == again == model_dir.resolve() / "pack"
    assert (folder / "det.onnx").read_bytes() == members["det.onnx"]
    assert sorted(p.name for p in folder.iterdir()) == ["det.onnx", "rec.onnx"]
    assert len(server.requests) == 1


def test_extraction_refuses_paths_escaping_the_folder(model_dir: Path) -> None:
    members = {"det.onnx": b"abc"}
    archive_bytes = make_zip({"../../evil.onnx": b"boom", "det.onnx": b"abc"})
    pack = archive_set(archive_bytes, members, ())
    model_dir.mkdir(parents=True)
    archive = model_dir / "pack.zip"
    archive.write_bytes(archive_bytes)
    with pytest.raises(ModelError, match="outside its folder"):
        store.extract_archive(archive, pack, model_dir)
    assert not (model_dir.parent.parent / "evil.onnx").exists()
    assert not (model_dir / "det.onnx").exists()


def test_a_hand_placed_file_is_accepted_when_it_verifies(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(2048)
    pack = single_file_set(payload, ("http://127.0.0.1:9/never.onnx",))
    monkeypatch.setattr(store, "get_model_set", lambda name: pack)
    (model_dir / "tiny").mkdir(parents=True)
    (model_dir / "tiny" / "tiny.onnx").write_bytes(payload)
    assert store.ensure_model("tiny", progress=None) == model_dir.resolve() / "tiny"
