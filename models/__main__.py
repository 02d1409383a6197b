"""Command line: list, fetch and verify the models (`python -m models --help`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models.registry import REGISTRY, ROLE_ENV, ModelSet, default_sets, get_model_set
from models.roles import ROLES, override_for
from models.store import check_set, ensure_model, mirror_urls, model_root, set_dir
from pipelines.errors import ModelError


def describe_set(model_set: ModelSet) -> dict[str, Any]:
    statuses = check_set(model_set)
    urls = mirror_urls(model_set.download)
    return {
        "name": model_set.name,
        "description": model_set.description,
        "license": model_set.license,
        "default": model_set.default,
        "folder": str(set_dir(model_set)),
        "present": all(s.present for s in statuses),
        "verified": all(s.verified for s in statuses),
        "download": {
            "filename": model_set.download.filename,
            "sha256": model_set.download.sha256,
            "size": model_set.download.size,
            "urls": urls,
        },
        "files": [
            {
                "filename": s.model_file.filename,
                "role": s.model_file.role or None,
                "sha256": s.model_file.sha256,
                "size": s.model_file.size,
                "urls": urls,
                "archive": model_set.download.filename if model_set.is_archive else None,
                "path": str(s.path),
                "present": s.present,
                "verified": s.verified,
            }
            for s in statuses
        ],
    }


def describe_overrides() -> list[dict[str, Any]]:
    rows = []
    for role in ROLES:
        override = override_for(role)
        if override is not None:
            path, origin = override
            rows.append({"role": role, "path": str(path), "origin": origin, "status": "unverified"})
    return rows


def command_list(as_json: bool) -> int:
    sets = [describe_set(m) for m in REGISTRY]
    if as_json:
        print(json.dumps(sets, indent=2))
        return 0
    print(f"Model folder: {model_root()}  (change it with SWAPSPOT_MODEL_DIR)\n")
    for entry in sets:
        state = "verified" if entry["verified"] else ("present, NOT verified" if entry["present"] else "not installed")
        default = " [default]" if entry["default"] else ""
        print(f"{entry['name']}{default}: {state}\n  {entry['description']}\n  Licence: {entry['license']}")
        for f in entry["files"]:
            mark = "ok " if f["verified"] else ("BAD" if f["present"] else "-- ")
            print(f"   {mark} {f['filename']:<20} {f['size']:>12,} B  sha256 {f['sha256'][:16]}...  {f['path']}")
        print()
    overrides = describe_overrides()
    for row in overrides:
        print(f"Override: {row['role']} -> {row['path']} ({row['status']}, from {row['origin']})")
    if not overrides:
        print("No local overrides (" + ", ".join(ROLE_ENV.values()) + " unset).")
    return 0


def selected_sets(names: list[str]) -> list[ModelSet]:
    return [get_model_set(n) for n in names] if names else list(default_sets())


def command_fetch(names: list[str]) -> int:
    failed = 0
    for model_set in selected_sets(names):
        print(f"{model_set.name}: {model_set.license}", file=sys.stderr)
        try:
            folder = ensure_model(model_set.name)
            print(f"{model_set.name}: ready in {folder}")
        except ModelError as error:
            failed += 1
            print(f"{model_set.name}: FAILED\n{error}", file=sys.stderr)
    return 1 if failed else 0


def command_verify(names: list[str]) -> int:
    bad = 0
    for model_set in selected_sets(names):
        for status in check_set(model_set):
            if status.problem:
                bad += 1
                print(f"{model_set.name}: {status.model_file.filename} {status.problem}", file=sys.stderr)
            else:
                print(f"{model_set.name}: {status.model_file.filename} ok")
    if bad:
        print(f"{bad} file(s) missing or not matching their sha256. Run `python -m models fetch`.", file=sys.stderr)
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models", description="List, fetch and verify Swap & Spot models.")
    sub = parser.add_subparsers(dest="command", required=True)
    list_parser = sub.add_parser("list", help="show every model set, its files, hashes, licence and state")
    list_parser.add_argument("--json", action="store_true", help="machine-readable output")
    fetch_parser = sub.add_parser("fetch", help="download and verify the default sets, or those named")
    fetch_parser.add_argument("names", nargs="*", metavar="NAME")
    verify_parser = sub.add_parser("verify", help="re-hash the installed files; non-zero exit on any problem")
    verify_parser.add_argument("names", nargs="*", metavar="NAME")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            return command_list(args.json)
        if args.command == "fetch":
            return command_fetch(args.names)
        return command_verify(args.names)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
