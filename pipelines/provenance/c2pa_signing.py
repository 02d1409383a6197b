"""C2PA Content Credentials, fully offline: a DEMO certificate authority, signing, and a plain-language reader.

Signing needs a leaf certificate issued by a CA (C2PA rejects a self-signed leaf), ES256, and no
timestamp server. On first use `ensure_demo_credentials(folder)` creates both in the caller's folder,
named so nobody mistakes them for a real identity. Reading disables remote manifest fetching and OCSP,
so nothing ever leaves the machine.

Verdicts, as `ProvenanceReport.state`:
- "trusted": the manifest is intact and signed by a certificate chaining to a trust anchor you gave.
- "valid": the manifest is intact, but nobody vouches for the signer (any one can make a certificate).
- "invalid": a manifest is there but the file no longer matches it (edited after signing) or it is broken.
- "none": no manifest at all. Absence proves nothing: most cameras and apps never add one, and
  re-saving, screenshots or uploads strip it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipelines.errors import InputError

SOFTWARE_AGENT = "Swap & Spot"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
DEMO_SIGNER_NAME = "Swap & Spot DEMO signer — not a real identity"
DEMO_CA_NAME = "Swap & Spot DEMO certificate authority — not a real identity"
DEMO_ORGANISATION = "Swap & Spot DEMO (teaching only)"
CA_CERT_FILE = "DEMO-ONLY-ca-certificate.pem"
CA_KEY_FILE = "DEMO-ONLY-ca-private-key.pem"
SIGNER_CHAIN_FILE = "DEMO-ONLY-signer-certificate-chain.pem"
SIGNER_KEY_FILE = "DEMO-ONLY-signer-private-key.pem"
README_FILE = "README-DEMO-CREDENTIALS.txt"
MIME_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4"}
PARENT_LABEL = "swapspot-parent"

ProvenanceState = Literal["trusted", "valid", "invalid", "none"]

EXPLANATIONS: dict[str, str] = {
    "trusted": (
        "Content Credentials are intact and signed by a certificate you chose to trust, so this file is "
        "unchanged since that signer described how it was made."
    ),
    "valid": (
        "Content Credentials are intact, so the file is unchanged since it was signed, but the signer is "
        "not on your trust list, so they only tell you what an unverified signer claims."
    ),
    "invalid": (
        "Content Credentials are present but do not match the file, so it was changed after signing or "
        "the credentials are damaged: do not rely on what they say."
    ),
    "none": (
        "This file carries no Content Credentials, which proves nothing either way: most cameras and apps "
        "never add them, and re-saving, screenshots and uploads strip them."
    ),
}
"""One plain-language sentence per verdict: what it proves (and for "none", that absence proves nothing)."""


@dataclass(frozen=True)
class DemoCredentials:
    """Paths of the DEMO CA and signer (PEM files) in the caller's folder."""

    folder: Path
    ca_certificate: Path
    signer_chain: Path  # leaf certificate followed by the CA certificate
    signer_key: Path

    def ca_pem(self) -> str:
        """The CA certificate, to pass as a trust anchor to `read_provenance`."""
        return self.ca_certificate.read_text(encoding="ascii")


@dataclass(frozen=True)
class ProvenanceReport:
    """What a file's Content Credentials say, for people."""

    state: ProvenanceState
    explanation: str  # one plain sentence: what this state proves
    actions: list[str] = field(default_factory=list)  # e.g. ["c2pa.opened", "c2pa.edited"]
    source_type: str | None = None  # IPTC digital source type of the edit, if stated
    signer: str | None = None  # certificate common name of the signer, if signed
    details: tuple[str, ...] = ()  # validation failure codes, for the curious


# ----------------------------------------------------------------------------------------------
# Demo credentials
# ----------------------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEMO_ORGANISATION),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, private_format = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private_format, serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically (a half-written key must never be used)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _create_demo_credentials(paths: DemoCredentials) -> None:
    """Create a DEMO CA (10 years) and an ES256 signing certificate issued by it (2 years)."""
    now = dt.datetime.now(dt.timezone.utc)
    # 1. The certificate authority.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(DEMO_CA_NAME)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # 2. The signer, issued by the CA, allowed to sign documents (C2PA accepts emailProtection).
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(DEMO_SIGNER_NAME))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # 3. Files: keys private to the owner, the signer's key written last (its presence marks completion).
    pem = serialization.Encoding.PEM
    paths.folder.mkdir(parents=True, exist_ok=True)
    (paths.folder / README_FILE).write_text(
        "These are DEMO credentials made by Swap & Spot on this machine for teaching.\n"
        "They identify nobody: anyone can create identical-looking ones. Never use them for real content.\n"
        "Delete this folder to make new ones.\n",
        encoding="utf-8",
    )
    _write_private(paths.folder / CA_KEY_FILE, _pem_key(ca_key))
    paths.ca_certificate.write_bytes(ca_cert.public_bytes(pem))
    paths.signer_chain.write_bytes(leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    _write_private(paths.signer_key, _pem_key(leaf_key))


def ensure_demo_credentials(folder: Path | str) -> DemoCredentials:
    """The DEMO CA and signer in `folder`, created there on first use."""
    folder = Path(folder)
    paths = DemoCredentials(folder, folder / CA_CERT_FILE, folder / SIGNER_CHAIN_FILE, folder / SIGNER_KEY_FILE)
    if not (paths.ca_certificate.is_file() and paths.signer_chain.is_file() and paths.signer_key.is_file()):
        _create_demo_credentials(paths)
    return paths


@lru_cache(maxsize=8)
def _signer_material(chain: Path, key: Path, mtime_ns: int) -> tuple[bytes, bytes]:
    """Certificate chain and key bytes (immutable), cached per file and modification time."""
    del mtime_ns  # part of the cache key only
    return chain.read_bytes(), key.read_bytes()


# ----------------------------------------------------------------------------------------------
# Signing
# ----------------------------------------------------------------------------------------------


def _mime_type(path: Path) -> str:
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise InputError(f"Content Credentials can be added to JPEG, PNG and MP4 files, not {path.name}.")
    return mime


def _offline_settings(trust_anchor_pem: str | None = None) -> dict[str, Any]:
    """Reader/builder settings that never touch the network."""
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchor_pem:
        settings["trust"] = {"user_anchors": trust_anchor_pem}
    return settings


def _manifest(title: str, has_parent: bool) -> dict[str, Any]:
    """The manifest definition: opened (the parent) or created, then edited by a trained algorithm."""
    agent = {"name": SOFTWARE_AGENT}
    first: dict[str, Any]
    if has_parent:
        first = {"action": "c2pa.opened", "softwareAgent": agent, "parameters": {"ingredientIds": [PARENT_LABEL]}}
    else:
        first = {"action": "c2pa.created", "softwareAgent": agent, "digitalSourceType": DIGITAL_SOURCE_TYPE}
    edited = {
        "action": "c2pa.edited",
        "softwareAgent": agent,
        "digitalSourceType": DIGITAL_SOURCE_TYPE,
        "description": "Face replaced with a trained face-swap model",
    }
    return {
        "claim_generator_info": [{"name": SOFTWARE_AGENT, "version": "1"}],
        "title": title,
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [first, edited]}}],
    }


def sign_media(
    src_path: Path | str,
    dst_path: Path | str,
    parent_path: Path | str | None = None,
    title: str = "AI face swap (Swap & Spot)",
    *,
    credentials: DemoCredentials | Path | str,
) -> Path:
    """Write a copy of `src_path` (JPEG, PNG or MP4) to `dst_path` with signed Content Credentials.

    The manifest records `c2pa.edited` with the digital source type "composite with trained algorithmic
    media", Swap & Spot as software agent and, when `parent_path` is given, the original as parent
    ingredient. `credentials`: the DEMO credentials or the folder to keep them in (created on first use).
    No timestamp server is contacted. `src_path` and `dst_path` may be the same file.
    """
    if not isinstance(credentials, DemoCredentials):
        credentials = ensure_demo_credentials(credentials)
    src, dst = Path(src_path), Path(dst_path)
    mime = _mime_type(src)
    if _mime_type(dst) != mime:
        raise InputError(f"{dst.name} must have the same file type as {src.name}.")
    # 1. Signer from the DEMO chain (leaf + CA) and key.
    chain, key = _signer_material(
        credentials.signer_chain, credentials.signer_key, credentials.signer_key.stat().st_mtime_ns
    )
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    context = c2pa.Context.from_dict(_offline_settings())
    # 2. Manifest, with the original as parent ingredient.
    with c2pa.Builder(_manifest(title, parent_path is not None), context=context) as builder:
        if parent_path is not None:
            parent = Path(parent_path)
            ingredient = {"title": parent.name, "relationship": "parentOf", "label": PARENT_LABEL}
            with parent.open("rb") as stream:
                builder.add_ingredient(ingredient, _mime_type(parent), stream)
        # 3. Sign into a temporary file beside the target, then move it into place.
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=dst.parent, prefix=".signing-", suffix=dst.suffix)
        os.close(fd)
        try:
            with src.open("rb") as source, Path(temp).open("w+b") as target:
                builder.sign(signer, mime, source, target)
            Path(temp).replace(dst)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    return dst


# ----------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------


def _failure_codes(results: dict[str, Any] | None) -> tuple[str, ...]:
    """Failure codes of the active manifest (signature, hashes, assertions)."""
    active = (results or {}).get("activeManifest") or {}
    return tuple(str(item.get("code", "")) for item in active.get("failure", []) if isinstance(item, dict))


def _actions_and_source(manifest: dict[str, Any]) -> tuple[list[str], str | None]:
    actions: list[str] = []
    source_type: str | None = None
    for assertion in manifest.get("assertions", []):
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in assertion.get("data", {}).get("actions", []):
            actions.append(str(action.get("action", "")))
            source_type = action.get("digitalSourceType") or source_type
    return actions, source_type


def read_provenance(path: Path | str, trust_anchor_pem: str | None = None) -> ProvenanceReport:
    """Read and verify a file's Content Credentials offline; `trust_anchor_pem`: CA certificates you trust."""
    path = Path(path)
    context = c2pa.Context.from_dict(_offline_settings(trust_anchor_pem))
    # 1. No manifest at all (or not a format C2PA knows) -> "none".
    try:
        reader = c2pa.Reader.try_create(path, context=context)
    except c2pa.C2paError.NotSupported:
        reader = None
    except c2pa.C2paError as error:
        return ProvenanceReport("invalid", EXPLANATIONS["invalid"], details=(type(error).__name__,))
    if reader is None:
        return ProvenanceReport("none", EXPLANATIONS["none"])
    # 2. The verdict of the verifier, and what the active manifest claims.
    with reader:
        state = str(reader.get_validation_state() or "").lower()
        failures = _failure_codes(reader.get_validation_results())
        manifest = reader.get_active_manifest() or {}
    actions, source_type = _actions_and_source(manifest)
    signer = (manifest.get("signature_info") or {}).get("common_name")
    # The SDK's own verdict: "Trusted" and "Valid" already allow for an unknown signer
    # (signingCredential.untrusted is listed as a failure code even then); anything else is invalid.
    verdict: ProvenanceState = "trusted" if state == "trusted" else "valid" if state == "valid" else "invalid"
    return ProvenanceReport(verdict, EXPLANATIONS[verdict], actions, source_type, signer, failures)


def manifest_json(path: Path | str) -> str:
    """The raw manifest store as JSON (for a "details" view), or "{}" when there is none."""
    reader = c2pa.Reader.try_create(Path(path), context=c2pa.Context.from_dict(_offline_settings()))
    if reader is None:
        return "{}"
    with reader:
        return json.dumps(json.loads(reader.json()), indent=2)
