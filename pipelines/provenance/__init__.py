"""Provenance and responsible use: visible label, invisible face watermark, C2PA Content Credentials.

Nothing here keeps per-call state: every function takes what it needs and returns new values.
"""

from __future__ import annotations

from pipelines.provenance.c2pa_signing import (
    DemoCredentials,
    ProvenanceReport,
    ensure_demo_credentials,
    read_provenance,
    sign_media,
)
from pipelines.provenance.label import add_visible_label, label_present, visible_label_enabled
from pipelines.provenance.payload import SWAPSPOT_TOOL_ID, WatermarkPayload, new_output_id
from pipelines.provenance.watermark import WatermarkReading, embed_watermark, read_watermark

__all__ = [
    "SWAPSPOT_TOOL_ID",
    "DemoCredentials",
    "ProvenanceReport",
    "WatermarkPayload",
    "WatermarkReading",
    "add_visible_label",
    "embed_watermark",
    "ensure_demo_credentials",
    "label_present",
    "new_output_id",
    "read_provenance",
    "read_watermark",
    "sign_media",
    "visible_label_enabled",
]
