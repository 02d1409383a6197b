"""Swap engines behind one `typing.Protocol`, and the records they exchange with `pipelines.swapping`.

An engine turns a `SourceIdentity` into its own `PreparedSource` ONCE per source (the inswapper latent,
the classic engine's aligned source crop), then swaps one target face at a time, returning a `Patch` (the
finished pixels of the face's region) instead of a whole frame, so several faces cost no frame copies.

Engines hold only shared, read-only model state: one instance serves every user and thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from pipelines.paste_back import Patch
from pipelines.types import Embedding, EngineName, Face, ImageRGB, RuntimeSettings, SwapSettings


@dataclass(frozen=True, eq=False)
class SourceIdentity:
    """Who is swapped in: built from one or more photos of one person."""

    embedding: Embedding | None  # mean of the photos' L2-normalised embeddings, renormalised (None: no recognizer)
    aligned: ImageRGB  # the first photo's face, aligned to the ArcFace template at `ALIGNED_SIZE` px
    photos: int  # how many photos contributed

    def __post_init__(self) -> None:
        self.aligned.setflags(write=False)
        if self.embedding is not None:
            self.embedding.setflags(write=False)


ALIGNED_SIZE = 256
"""Side of `SourceIdentity.aligned` (a multiple of 128, so it shares inswapper's 128 px frame)."""


@dataclass(frozen=True, eq=False)
class PreparedSource:
    """An engine's per-source data, computed once: the inswapper latent or the classic engine's crop."""

    engine: EngineName
    latent: NDArray[np.float32] | None = None  # inswapper: (1, 512) = normalise(embedding @ emap)
    aligned: ImageRGB | None = None  # classic: the source face aligned at ALIGNED_SIZE px


@runtime_checkable
class SwapEngine(Protocol):
    """What `pipelines.swapping` needs from an engine."""

    name: EngineName
    needs_recognizer: bool  # True when prepare_source needs the source embedding

    def prepare_source(self, identity: SourceIdentity) -> PreparedSource:
        """Per-source work, done once (raises InputError if the identity lacks what the engine needs)."""
        ...

    def swap(self, frame: ImageRGB, target: Face, source: PreparedSource, settings: SwapSettings) -> Patch | None:
        """The swapped pixels of `target`'s region in `frame` (None when the face lies outside the frame)."""
        ...


def create_engine(
    name: EngineName,
    swapper_path: Path | None = None,
    runtime: RuntimeSettings | None = None,
    run_path: Path | None = None,
) -> SwapEngine:
    """The engine called `name`; inswapper needs the (already resolved and verified) model file."""
    if name == "classic":
        from pipelines.engine_classic import ClassicEngine

        return ClassicEngine()
    if name == "inswapper":
        if swapper_path is None:
            raise ValueError("the inswapper engine needs a swapper model file")
        from pipelines.engine_inswapper import load_inswapper_engine

        return load_inswapper_engine(Path(swapper_path), runtime or RuntimeSettings(), run_path)
    raise ValueError(f"unknown swap engine {name!r}")
