"""Everything that belongs to one browser tab. One instance per viewer, held in `gr.State`.

Nothing here is written to disk: the source face is kept as an embedding and an aligned crop in memory,
for as long as the tab is open (Gradio drops the state when the tab closes or after its time to live).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from pipelines.live import LiveSession
from pipelines.provenance import WatermarkPayload
from pipelines.swap_engines import SourceIdentity, SwapEngine

SourceKind = Literal["example", "upload", "snapshot"]


@dataclass
class ViewerState:
    identity: SourceIdentity | None = None
    source_label: str = ""
    source_kind: SourceKind | None = None
    live: LiveSession = field(default_factory=LiveSession)
    live_engine: str | None = None  # the engine the live session's source was prepared for
    cancel: threading.Event | None = None  # set by the Cancel button to stop this viewer's running clip
    live_payload: WatermarkPayload | None = None  # this viewer's live output id (made on first use)
    shown_score: str = ""  # what the live panel shows now (so unchanged texts are not re-sent)
    shown_stats: str = ""

    def set_source(self, identity: SourceIdentity, label: str, kind: SourceKind) -> None:
        self.identity, self.source_label, self.source_kind = identity, label, kind
        self.live_engine = None  # re-prepared for the live engine on the next frame

    def prepare_live(self, engine: SwapEngine) -> None:
        """Give the live session this viewer's source, prepared for `engine` (once per source and engine)."""
        if self.identity is None:
            if self.live.source is not None:
                self.live.set_source(None)
            return
        if self.live_engine != engine.name:
            self.live.set_source(engine.prepare_source(self.identity), self.source_label)
            self.live_engine = engine.name

    def payload_for_live(self) -> WatermarkPayload:
        if self.live_payload is None:
            self.live_payload = WatermarkPayload.new()
        return self.live_payload

    def close(self) -> None:
        """The tab closed or its state expired: stop the worker and forget the face."""
        self.live.stop()
        self.identity = None
