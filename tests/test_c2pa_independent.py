"""Our signed outputs checked by an INDEPENDENT C2PA reader: @trustnxt/c2pa-ts (pure TypeScript, not c2pa-rs).

c2pa-python wraps c2pa-rs, the library that signs, so `tests/test_c2pa.py` cannot catch a c2pa-rs quirk that
other readers reject. Here `tests/c2pa_ts/verify.mjs` (Node.js) reads what `sign_media` wrote and reports one
JSON verdict. Set up with `npm ci --prefix tests/c2pa_ts --no-audit --no-fund`; without Node.js 20+ or that
install the module is skipped.

What c2pa-ts 0.9.4 can and cannot do (the tests follow it, and skip rather than pretend):
- JPEG and PNG: read and fully validated (claim signature, hashed assertion URIs, data hash over the bytes).
- MP4: not a declared c2pa-ts format. Its BMFF reader accepts only the HEIF brands heic/mif1 and refuses an
  MP4 ('isom'), so the plain MP4 check skips with that reason. With `--widen-bmff-brands` (the file's brand
  added to that allowlist, nothing else changed) its BMFF parser and BMFF-hash validation do run on our MP4;
  that opt-in experiment is tested separately and labelled as such.
- Trust: c2pa-ts has no chain-of-trust validation (its "signingCredential.trusted" status only means the
  certificate profile is acceptable). "trusted" comes from verify.mjs checking the chain to `--anchor` with
  Node's own X.509 code (node:crypto), still independent of c2pa-rs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipelines.provenance.c2pa_signing import (
    DEMO_SIGNER_NAME,
    DemoCredentials,
    ensure_demo_credentials,
    sign_media,
)
from tests.c2pa_media import flip_bytes, write_image, write_mp4

VERIFIER_DIR = Path(__file__).resolve().parent / "c2pa_ts"
VERIFY_SCRIPT = VERIFIER_DIR / "verify.mjs"
SOURCE_TYPE_SUFFIX = "compositeWithTrainedAlgorithmicMedia"
DATA_HASH, BMFF_HASH = "assertion.dataHash.match", "assertion.bmffHash.match"
HARD_BINDING = {".jpg": DATA_HASH, ".png": DATA_HASH, ".mp4": BMFF_HASH}  # the hash over the media bytes
INSTALL_HINT = "npm ci --prefix tests/c2pa_ts --no-audit --no-fund"


def _node_skip_reason() -> str | None:
    """Why the independent verifier cannot run here, or None when it can."""
    node = shutil.which("node")
    if node is None:
        return "Node.js is not installed: the independent C2PA verifier (@trustnxt/c2pa-ts) needs it"
    if not (VERIFIER_DIR / "node_modules" / "@trustnxt" / "c2pa-ts").is_dir():
        return f"tests/c2pa_ts/node_modules is absent: run `{INSTALL_HINT}`"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < 20:
        return f"Node.js 20 or newer is needed by the c2pa-ts verifier (found {version.stdout.strip() or '?'})"
    return None


_SKIP_REASON = _node_skip_reason()
pytestmark = pytest.mark.skipif(_SKIP_REASON is not None, reason=_SKIP_REASON or "")


def verify(path: Path, *options: str) -> dict[str, Any]:
    """The verdict of `node tests/c2pa_ts/verify.mjs path [options]` (one JSON object)."""
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(VERIFY_SCRIPT), str(path), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    verdict: dict[str, Any] = json.loads(done.stdout)
    return verdict


def unsupported(verdict: dict[str, Any]) -> str | None:
    """The verifier's "format.unsupported: ..." reason, if c2pa-ts cannot read the file's format."""
    return next((str(e) for e in verdict["errors"] if str(e).startswith("format.unsupported")), None)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa-independent")


@pytest.fixture(scope="module")
def credentials(work: Path) -> DemoCredentials:
    return ensure_demo_credentials(work / "demo-credentials")


@pytest.fixture(scope="module")
def signed(work: Path, credentials: DemoCredentials) -> dict[str, Path]:
    """A JPEG, a PNG and an MP4 signed by `sign_media`, each with a JPEG parent ingredient."""
    parent = write_image(work / "parent.jpg", seed=1)
    sources = {
        ".jpg": write_image(work / "swapped.jpg", seed=2),
        ".png": write_image(work / "swapped.png", seed=3),
        ".mp4": write_mp4(work / "swapped.mp4"),
    }
    return {
        suffix: sign_media(source, work / f"signed{suffix}", parent_path=parent, credentials=credentials)
        for suffix, source in sources.items()
    }


def assert_valid_swap_output(verdict: dict[str, Any], suffix: str) -> None:
    assert verdict["manifest"] is True, verdict
    assert verdict["valid"] is True, verdict
    assert verdict["errors"] == [], verdict
    assert "claimSignature.validated" in verdict["checks"] and HARD_BINDING[suffix] in verdict["checks"], verdict
    assert "c2pa.edited" in verdict["actions"] and "c2pa.opened" in verdict["actions"], verdict
    assert str(verdict["digitalSourceType"]).endswith(SOURCE_TYPE_SUFFIX), verdict
    assert verdict["signer"] == DEMO_SIGNER_NAME, verdict


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".mp4"])
def test_signed_output_is_valid_with_edit_and_source_type(signed: dict[str, Path], suffix: str) -> None:
    verdict = verify(signed[suffix])
    reason = unsupported(verdict)
    if reason is not None:
        pytest.skip(f"@trustnxt/c2pa-ts cannot read {suffix} files: {reason}")
    assert_valid_swap_output(verdict, suffix)
    assert verdict["trusted"] is None  # no anchor given


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_signed_output_is_trusted_only_with_the_demo_ca(
    signed: dict[str, Path], credentials: DemoCredentials, work: Path, suffix: str
) -> None:
    verdict = verify(signed[suffix], "--anchor", str(credentials.ca_certificate))
    assert_valid_swap_output(verdict, suffix)
    assert verdict["trusted"] is True, verdict
    stranger = ensure_demo_credentials(work / "another-demo-ca")  # same names, different keys
    verdict = verify(signed[suffix], "--anchor", str(stranger.ca_certificate))
    assert verdict["valid"] is True and verdict["trusted"] is False, verdict
    assert verdict["errors"] == ["signingCredential.untrusted"], verdict


@pytest.mark.parametrize(("suffix", "marker", "offset"), [(".jpg", b"\xff\xda", 40), (".png", b"IDAT", 20)])
def test_flipped_image_bytes_are_invalid(
    signed: dict[str, Path], credentials: DemoCredentials, work: Path, suffix: str, marker: bytes, offset: int
) -> None:
    tampered = flip_bytes(signed[suffix], work / f"tampered{suffix}", marker, offset)
    verdict = verify(tampered, "--anchor", str(credentials.ca_certificate))
    assert verdict["manifest"] is True and verdict["valid"] is False and verdict["trusted"] is False, verdict
    assert verdict["errors"] == ["assertion.dataHash.mismatch"], verdict


def test_relabelled_source_type_is_invalid(signed: dict[str, Path], work: Path) -> None:
    """Hiding the AI edit by rewriting the claimed source type inside the manifest breaks its hash."""
    data = signed[".jpg"].read_bytes()
    assert data.count(SOURCE_TYPE_SUFFIX.encode()) == 1
    relabelled = work / "relabelled.jpg"
    relabelled.write_bytes(data.replace(SOURCE_TYPE_SUFFIX.encode(), b"digitalCapture".ljust(len(SOURCE_TYPE_SUFFIX))))
    verdict = verify(relabelled)
    assert verdict["manifest"] is True and verdict["valid"] is False, verdict
    assert verdict["errors"] == ["assertion.hashedURI.mismatch"], verdict


def test_mp4_with_widened_bmff_brands_is_trusted_and_tamper_evident(
    signed: dict[str, Path], credentials: DemoCredentials, work: Path
) -> None:
    """Opt-in experiment: c2pa-ts's own BMFF parser and BMFF-hash check on our MP4 (brand 'isom' allowed)."""
    anchor = ("--anchor", str(credentials.ca_certificate))
    verdict = verify(signed[".mp4"], *anchor, "--widen-bmff-brands")
    assert verdict["format"] == "bmff (brand allowlist widened: isom)", verdict
    assert_valid_swap_output(verdict, ".mp4")
    assert verdict["trusted"] is True, verdict
    tampered = flip_bytes(signed[".mp4"], work / "tampered.mp4", b"mdat", 40)
    verdict = verify(tampered, *anchor, "--widen-bmff-brands")
    assert verdict["valid"] is False and verdict["errors"] == ["assertion.bmffHash.mismatch"], verdict


def test_unsigned_image_has_no_manifest(work: Path) -> None:
    verdict = verify(write_image(work / "plain.jpg", seed=4))
    assert verdict["manifest"] is False and verdict["valid"] is False and verdict["errors"] == [], verdict
