"""Errors whose message is meant for the person using the app or the command line."""

from __future__ import annotations


class SwapSpotError(Exception):
    """Base class: the message is written for a non-engineer and shown as is."""


class InputError(SwapSpotError):
    """The user's input cannot be used (no face, unreadable file, too large ...). CLI exit code 2."""


class ModelError(SwapSpotError):
    """A model is missing, failed to download, or does not match its published checksum."""
