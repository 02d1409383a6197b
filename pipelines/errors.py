"""Errors whose message is meant for the person using the app or the command line."""

from __future__ import annotations

from pathlib import Path


class SwapSpotError(Exception):
    """Base class: the message is written for a non-engineer and shown as is."""


class InputError(SwapSpotError):
    """The user's input cannot be used (no face, unreadable file, too large ...). CLI exit code 2."""


class ModelError(SwapSpotError):
    """A model is missing, failed to download, or does not match its published checksum."""


def check_input_file(path: Path) -> int:
    """Refuse a missing or empty file with a message for people; returns its size in bytes."""
    if not path.is_file():
        raise InputError(f"The file {path.name} does not exist.")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"The file {path.name} is empty (0 bytes).")
    return size
