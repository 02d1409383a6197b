"""Which file serves each model role: a local override (flag or environment variable) or the registry."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.registry import ROLE_DEFAULTS, ROLE_ENV
from models.store import verified_file
from pipelines.errors import ModelError

Role = Literal["detector", "recognizer", "landmarks", "swapper"]
ROLES: tuple[Role, ...] = ("detector", "recognizer", "landmarks", "swapper")


@dataclass(frozen=True)
class ResolvedModel:
    role: str
    path: Path
    verified: bool  # sha256 matched the registry; False for local overrides
    origin: str  # "registry", "--<role> flag" or the environment variable's name

    @property
    def status(self) -> str:
        return "verified" if self.verified else f"unverified (local file from {self.origin})"


def override_for(role: Role, flag_value: Path | str | None = None) -> tuple[Path, str] | None:
    """A user-chosen local file for the role: the command-line flag wins over the environment variable."""
    if flag_value:
        return Path(flag_value).expanduser(), f"--{role} flag"
    env_value = os.environ.get(ROLE_ENV[role], "").strip()
    if env_value:
        return Path(env_value).expanduser(), ROLE_ENV[role]
    return None


def resolve_role(role: Role, flag_value: Path | str | None = None) -> ResolvedModel:
    """The file for a role; raises `ModelError` (saying how to get it) when it is missing or altered."""
    override = override_for(role, flag_value)
    if override is not None:
        path, origin = override
        if not path.is_file():
            raise ModelError(f"The {role} model {path} (from {origin}) does not exist.")
        return ResolvedModel(role, path.resolve(), False, origin)
    set_name, filename = ROLE_DEFAULTS[role]
    return ResolvedModel(role, verified_file(set_name, filename), True, "registry")


def try_resolve_role(role: Role, flag_value: Path | str | None = None) -> ResolvedModel | ModelError:
    """Like `resolve_role`, but returns the error instead of raising (for status pages)."""
    try:
        return resolve_role(role, flag_value)
    except ModelError as error:
        return error
