"""C2PA Content Credentials offline: DEMO credentials, signing JPEG/PNG/MP4, the four reader verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pipelines.errors import InputError
from pipelines.provenance.c2pa_signing import (
    DEMO_SIGNER_NAME,
    DIGITAL_SOURCE_TYPE,
    SOFTWARE_AGENT,
    DemoCredentials,
    ensure_demo_credentials,
    manifest_json,
    read_provenance,
    sign_media,
)
from tests.c2pa_media import flip_bytes, write_image, write_mp4


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa")


@pytest.fixture(scope="module")
def credentials(work: Path) -> DemoCredentials:
    return ensure_demo_credentials(work / "demo-credentials")


def test_demo_credentials_are_clearly_named_ca_issued_and_reused(credentials: DemoCredentials, work: Path) -> None:
    names = sorted(p.name for p in credentials.folder.iterdir())
    assert all("DEMO" in name for name in names), names
    chain = x509.load_pem_x509_certificates(credentials.signer_chain.read_bytes())
    leaf, ca = chain[0], x509.load_pem_x509_certificate(credentials.ca_certificate.read_bytes())
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DEMO_SIGNER_NAME
    assert leaf.issuer == ca.subject and leaf.subject != leaf.issuer  # issued by the CA, not self-signed
    assert (credentials.signer_key.stat().st_mode & 0o077) == 0  # private key readable by its owner only
    again = ensure_demo_credentials(credentials.folder)
    assert again.signer_chain.read_bytes() == credentials.signer_chain.read_bytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_signed_image_reads_valid_then_trusted(credentials: DemoCredentials, work: Path, suffix: str) -> None:
    original = write_image(work / f"original{suffix}", seed=1)
    swapped = write_image(work / f"swapped{suffix}", seed=2)
    signed = sign_media(swapped, work / f"signed{suffix}", parent_path=original, credentials=credentials)
    report = read_provenance(signed)
    assert report.state == "valid"
    assert "c2pa.edited" in report.actions and "c2pa.opened" in report.actions
    assert report.source_type == DIGITAL_SOURCE_TYPE
    assert report.signer == DEMO_SIGNER_NAME
    assert "signer" in report.explanation
    assert read_provenance(signed, trust_anchor_pem=credentials.ca_pem()).state == "trusted"


def test_signed_mp4_reads_trusted_with_its_actions(credentials: DemoCredentials, work: Path) -> None:
    signed = sign_media(
        write_mp4(work / "clip.mp4"),
        work / "clip-signed.mp4",
        parent_path=write_image(work / "parent.jpg"),
        title="swapped clip",
        credentials=credentials.folder,  # a folder works as well
    )
    report = read_provenance(signed, trust_anchor_pem=credentials.ca_pem())
    assert report.state == "trusted"
    assert report.actions[-1] == "c2pa.edited" and report.source_type == DIGITAL_SOURCE_TYPE


def test_without_parent_the_output_is_created_then_edited(credentials: DemoCredentials, work: Path) -> None:
    signed = sign_media(write_image(work / "alone.jpg"), work / "alone-signed.jpg", credentials=credentials)
    report = read_provenance(signed)
    assert report.state == "valid" and report.actions == ["c2pa.created", "c2pa.edited"]


@pytest.mark.parametrize(("suffix", "marker", "offset"), [(".jpg", b"\xff\xda", 40), (".png", b"IDAT", 20)])
def test_flipped_image_bytes_read_invalid(
    credentials: DemoCredentials, work: Path, suffix: str, marker: bytes, offset: int
) -> None:
    signed = sign_media(
        write_image(work / f"to-tamper{suffix}"), work / f"tamper-signed{suffix}", credentials=credentials
    )
    tampered = flip_bytes(signed, work / f"tampered{suffix}", marker, offset)
    report = read_provenance(tampered, trust_anchor_pem=credentials.ca_pem())
    assert report.state == "invalid" and "changed after signing" in report.explanation


def test_flipped_video_bytes_read_invalid(credentials: DemoCredentials, work: Path) -> None:
    signed = sign_media(write_mp4(work / "to-tamper.mp4"), work / "tamper-signed.mp4", credentials=credentials)
    assert read_provenance(flip_bytes(signed, work / "tampered.mp4", b"mdat", 40)).state == "invalid"


def test_reencoded_copy_has_no_credentials_and_that_proves_nothing(credentials: DemoCredentials, work: Path) -> None:
    signed = sign_media(write_image(work / "to-reencode.jpg"), work / "reencode-signed.jpg", credentials=credentials)
    copy = work / "reencoded.jpg"
    pixels = cv2.imread(str(signed))
    assert pixels is not None and cv2.imwrite(str(copy), pixels)
    report = read_provenance(copy)
    assert report.state == "none" and report.actions == [] and report.signer is None
    assert "proves nothing" in report.explanation
    text_file = work / "notes.txt"
    text_file.write_text("not media")
    assert read_provenance(text_file).state == "none"


def test_refuses_other_file_types(credentials: DemoCredentials, work: Path) -> None:
    with pytest.raises(InputError):
        sign_media(work / "photo.webp", work / "out.webp", credentials=credentials)
    with pytest.raises(InputError):
        sign_media(write_image(work / "kind.jpg"), work / "kind.png", credentials=credentials)


def test_manifest_names_the_tool_as_software_agent(credentials: DemoCredentials, work: Path) -> None:
    signed = sign_media(write_image(work / "agent.jpg"), work / "agent-signed.jpg", credentials=credentials)
    manifest = json.loads(manifest_json(signed))
    active = manifest["manifests"][manifest["active_manifest"]]
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert all(action["softwareAgent"]["name"] == SOFTWARE_AGENT == "Swap & Spot" for action in actions)
    assert manifest_json(write_image(work / "plain.jpg")) == "{}"
