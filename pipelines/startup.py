"""What the app does before it opens the page: fetch missing default models, report what is usable.

Never raises for a missing model: the page must open anyway and say what is missing and how to get it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from models.registry import ROLE_DEFAULTS, ROLE_ENV, default_sets, get_model_set
from models.roles import ROLES, ResolvedModel, Role, override_for, try_resolve_role
from models.store import ensure_model, file_path
from pipelines.errors import ModelError
from pipelines.loading import ModelOverrides

MAIN_ROLES: tuple[Role, ...] = ("detector", "recognizer", "swapper")  # landmarks alone never trigger a download

ROLE_PURPOSE: dict[str, str] = {
    "detector": "finds faces (needed by everything)",
    "recognizer": "measures identity (needed by the neural swap and by 'reference' face matching)",
    "landmarks": "106-point landmarks (optional: mouth mask)",
    "swapper": "the neural face swap (inswapper_128)",
}


@dataclass(frozen=True)
class ModelReport:
    """What the app could load for each role, and what went wrong with the rest."""

    roles: dict[str, ResolvedModel | ModelError]
    download_errors: tuple[str, ...] = field(default_factory=tuple)

    def available(self, role: Role) -> bool:
        return isinstance(self.roles.get(role), ResolvedModel)

    def path(self, role: Role) -> ResolvedModel | None:
        value = self.roles.get(role)
        return value if isinstance(value, ResolvedModel) else None

    def missing(self, include_optional: bool = True) -> list[str]:
        """Roles without a usable model (landmarks are optional: only the mouth mask needs them)."""
        return [
            role
            for role, value in self.roles.items()
            if isinstance(value, ModelError) and (include_optional or role in MAIN_ROLES)
        ]

    def as_markdown(self) -> str:
        lines = ["| role | status | file |", "| --- | --- | --- |"]
        for role, value in self.roles.items():
            if isinstance(value, ResolvedModel):
                lines.append(f"| {role} | ✅ {value.status} | `{value.path.name}` |")
            else:
                lines.append(f"| {role} | ❌ missing | {ROLE_PURPOSE[role]} |")
        text = "\n".join(lines)
        if self.missing():
            text += "\n\n" + how_to_get_models(self)
        return text


def how_to_get_models(report: ModelReport) -> str:
    """Plain instructions for whoever runs the app, naming the exact files and folders."""
    steps = []
    for role in report.missing():
        set_name, filename = ROLE_DEFAULTS[role]
        model_set = get_model_set(set_name)
        steps.append(
            f"- **{role}** ({ROLE_PURPOSE[role]}): run `python -m models fetch {set_name}` on a connected machine, "
            f"or download `{model_set.download.filename}` from {model_set.download.urls[0]} and place "
            f"{'its files' if model_set.is_archive else 'it'} at `{file_path(model_set, filename).parent}`; "
            f"or point `{ROLE_ENV[role]}` at your own ONNX file."
        )
    return "**How to get the missing models** (then restart the app):\n\n" + "\n".join(steps)


def needed_sets(overrides: ModelOverrides) -> list[str]:
    """Default model sets that serve a main role (detector, recognizer, swapper) not overridden locally."""
    needed = []
    for model_set in default_sets():
        roles = [r for r, (set_name, _) in ROLE_DEFAULTS.items() if set_name == model_set.name and r in MAIN_ROLES]
        if any(override_for(r, overrides.get(r)) is None for r in roles):
            needed.append(model_set.name)
    return needed


def prepare_models(overrides: ModelOverrides | None = None, download: bool = True) -> ModelReport:
    """Fetch missing default sets (progress on the console), then resolve every role."""
    overrides = overrides or ModelOverrides()
    errors: list[str] = []
    if download:
        for name in needed_sets(overrides):
            try:
                ensure_model(name)
            except ModelError as error:
                errors.append(str(error))
                print(f"[swap&spot] {error}", file=sys.stderr)
    roles: dict[str, ResolvedModel | ModelError] = {r: try_resolve_role(r, overrides.get(r)) for r in ROLES}
    return ModelReport(roles, tuple(errors))
