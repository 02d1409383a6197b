"""Command line: swap faces in a photo or an uploaded clip.

    python -m pipelines.swap --source me.jpg --target group.jpg --output out.jpg
    python -m pipelines.swap --source a.jpg --source b.jpg --target clip.mp4 --output out.mp4 \\
        --faces reference --reference person_a.jpg --reference person_b.jpg --json

Exit codes: 0 success, 2 bad input (the message on stderr, no traceback), 1 a model or internal failure.
No partial output file is left behind on failure (photos and clips are written atomically).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.roles import ResolvedModel
from pipelines.errors import InputError, ModelError
from pipelines.image_io import IMAGE_SUFFIXES, load_image, save_image
from pipelines.loading import (
    ModelOverrides,
    Precision,
    fp32_swapper_for,
    int8_swapper_for,
    load_face_analyzer,
    resolve,
)
from pipelines.outputs import OutputPolicy, mark_frame
from pipelines.provenance import WatermarkPayload, sign_media
from pipelines.swap_engines import create_engine
from pipelines.swapping import (
    SwapJob,
    SwappedFace,
    create_swap_job,
    identity_from_photos,
    reference_embedding,
    swap_clip,
    swap_image,
)
from pipelines.types import EngineName, FaceSelection, ImageRGB, SwapSettings
from pipelines.video import Cancelled, is_video_path, probe_video

WRITABLE_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")  # what C2PA signing supports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.swap", description="Swap faces in a photo or a clip (Swap & Spot)."
    )
    parser.add_argument("--source", action="append", required=True, type=Path, help="source photo (repeatable)")
    parser.add_argument("--target", required=True, type=Path, help="target photo or clip")
    parser.add_argument("--output", required=True, type=Path, help="output photo or .mp4 clip")
    parser.add_argument("--engine", choices=("inswapper", "classic"), default="inswapper")
    parser.add_argument("--faces", choices=("all", "largest", "reference"), default="all")
    parser.add_argument("--reference", action="append", default=[], type=Path, help="reference photo (repeatable)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=SwapSettings.reference_threshold,
        help="cosine similarity a face needs to match a reference (default 0.35)",
    )
    parser.add_argument("--source-face", type=int, default=None, help="face number in the source photo (1 = largest)")
    parser.add_argument("--colour-correction", action="store_true", help="match the swapped face's colours")
    parser.add_argument("--mouth-mask", action="store_true", help="keep the target's own mouth")
    parser.add_argument("--poisson", action="store_true", help="classic engine: Poisson blending")
    parser.add_argument("--detector", type=Path, help="local detector ONNX file (unverified)")
    parser.add_argument("--recognizer", type=Path, help="local recognizer ONNX file (unverified)")
    parser.add_argument("--landmarks", type=Path, help="local 106-point landmark ONNX file (unverified)")
    parser.add_argument("--swapper", type=Path, help="local inswapper ONNX file (unverified)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8"),
        default="auto",
        help="swapper precision on a CPU: auto uses the prepared int8 swapper when it passed its quality check",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


@dataclass(frozen=True)
class Request:
    """The checked command line."""

    sources: tuple[Path, ...]
    target: Path
    output: Path
    references: tuple[Path, ...]
    is_clip: bool
    settings: SwapSettings
    overrides: ModelOverrides
    precision: Precision = "auto"


def check_request(args: argparse.Namespace) -> Request:
    """1. settings from flags -> 2. output kind matches target kind -> 3. the target is readable."""
    # 1. Settings.
    engine: EngineName = args.engine
    faces: FaceSelection = args.faces
    if args.source_face is not None and args.source_face < 1:
        raise InputError("--source-face counts from 1 (the largest face).")
    settings = SwapSettings(
        engine=engine,
        faces=faces,
        reference_threshold=args.threshold,
        source_face_index=None if args.source_face is None else args.source_face - 1,
        colour_correction=args.colour_correction,
        mouth_mask=args.mouth_mask,
        poisson=args.poisson,
    )
    if args.reference and faces != "reference":
        raise InputError("--reference photos are only used with --faces reference.")
    # 2. Photo in, photo out; clip in, clip out.
    is_clip = is_video_path(args.target)
    if is_clip and args.output.suffix.lower() != ".mp4":
        raise InputError(f"A clip is written as .mp4; the output name {args.output.name} does not end in .mp4.")
    if not is_clip:
        if args.target.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{args.target.name}: the target must be a photo ({', '.join(IMAGE_SUFFIXES)}) or a clip.")
        if args.output.suffix.lower() not in WRITABLE_PHOTO_SUFFIXES:
            raise InputError(
                f"A photo is written as .jpg or .png (formats that carry Content Credentials), "
                f"not as {args.output.name}."
            )
    if args.output.resolve() == args.target.resolve():
        raise InputError("The output would overwrite the target; choose another output name.")
    # 3. Refuse an unreadable clip before loading any model (photos are read in `run`).
    if is_clip:
        probe_video(args.target)
    overrides = ModelOverrides(
        detector=args.detector, recognizer=args.recognizer, landmarks=args.landmarks, swapper=args.swapper
    )
    return Request(
        tuple(args.source),
        args.target,
        args.output,
        tuple(args.reference),
        is_clip,
        settings,
        overrides,
        args.precision,
    )


def prepare_job(
    request: Request, sources: list[ImageRGB], references: list[ImageRGB]
) -> tuple[SwapJob, list[ResolvedModel]]:
    """Load the models this request needs and build its job (sources prepared once)."""
    settings = request.settings
    # 1. Analysis models: a recognizer for inswapper (source identity) and for reference selection.
    need_recognizer = settings.engine == "inswapper" or settings.faces == "reference"
    loaded = load_face_analyzer(request.overrides, need_recognizer=need_recognizer, want_landmarks=settings.mouth_mask)
    models = list(loaded.models)
    # 2. The engine.
    swapper_path = None
    if settings.engine == "inswapper":
        swapper = resolve("swapper", request.overrides)
        models.append(swapper)
        swapper_path = swapper.path
    run_path = None
    if swapper_path is not None:
        run_path, _ = int8_swapper_for(
            swapper_path, request.precision, loaded.analyzer, build=request.precision == "int8"
        )
        if run_path is None:  # fp32: its Winograd form when one has been prepared (`python -m pipelines.fast_fp32`)
            run_path, _ = fp32_swapper_for(swapper_path)
    engine = create_engine(settings.engine, swapper_path, run_path=run_path)
    # 3. Who is swapped in: one person from all photos, or one person per photo with several references.
    analyzer = loaded.analyzer
    names = [p.name for p in request.sources]
    many = settings.faces == "reference" and len(references) > 1 and len(sources) > 1
    if many and len(sources) != len(references):
        raise InputError(
            f"{len(sources)} source photos and {len(references)} reference photos: give one source per reference "
            "(source 1 replaces the person in reference 1, and so on), or one reference for one source person."
        )
    if many:
        identities = [
            identity_from_photos([photo], analyzer, face_index=settings.source_face_index, names=[name])
            for photo, name in zip(sources, names, strict=True)
        ]
    else:
        identities = [identity_from_photos(sources, analyzer, face_index=settings.source_face_index, names=names)]
    refs = [
        reference_embedding(photo, analyzer, p.name) for photo, p in zip(references, request.references, strict=True)
    ]
    return create_swap_job(analyzer, engine, identities, refs, settings), models


def run(request: Request, show_progress: bool) -> dict[str, Any]:
    """Do the swap and return the summary printed with --json."""
    started = time.perf_counter()
    # 1. Read the photos first: bad files fail before any model loads.
    sources = [load_image(path) for path in request.sources]
    references = [load_image(path) for path in request.references]
    target = None if request.is_clip else load_image(request.target)
    # 2. Models and the job.
    job, models = prepare_job(request, sources, references)
    # 3. Swap; every swapped face is watermarked and every output labelled, then the file is signed (C2PA).
    policy = OutputPolicy.from_environment()
    payload = WatermarkPayload.new()
    request.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".swapspot-", dir=request.output.parent) as work:
        unsigned = Path(work) / f"unsigned{request.output.suffix.lower()}"
        if target is not None:
            result = swap_image(target, job)
            marked = mark_frame(result.image, [s.face for s in result.swapped], payload, policy)
            save_image(marked if result.swapped else result.image, unsigned)
            frames, faces_swapped = 1, len(result.swapped)
            extra: dict[str, Any] = {"faces_found": result.faces_found}
        else:
            progress = _print_progress if show_progress else None

            def post_frame(frame: ImageRGB, swapped: tuple[SwappedFace, ...], index: int) -> ImageRGB:
                return mark_frame(frame, [s.face for s in swapped], payload, policy) if swapped else frame

            clip = swap_clip(request.target, unsigned, job, post_frame=post_frame, progress=progress)
            if show_progress:
                print(file=sys.stderr)  # end the progress line
            frames, faces_swapped = clip.frames, clip.faces_swapped
            extra = {
                "frames_with_swaps": clip.frames_with_swaps,
                "duration": round(clip.duration, 3),
                "audio": clip.audio,
            }
        sign_media(unsigned, request.output, parent_path=request.target, credentials=policy.credentials_dir)
    extra["watermark"] = payload.describe() if faces_swapped else None
    extra["content_credentials"] = "signed with the DEMO credentials in " + str(policy.credentials_dir)
    extra["visible_label"] = policy.visible_label
    seconds = time.perf_counter() - started
    return {
        "engine": request.settings.engine,
        "faces": request.settings.faces,
        "output": str(request.output),
        "frames": frames,
        "faces_swapped": faces_swapped,
        "seconds": round(seconds, 3),
        **extra,
        "models": [{"role": m.role, "path": str(m.path), "verified": m.verified, "origin": m.origin} for m in models],
    }


def _print_progress(done: int, total: int | None) -> None:
    if done % 25 == 0 or done == total:
        print(f"\r{done}/{total if total else '?'} frames", end="", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        request = check_request(args)
        summary = run(request, show_progress=not args.json)
    except (InputError, Cancelled) as error:
        print(str(error), file=sys.stderr)
        return 2
    except ModelError as error:
        print(f"Model problem: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception:
        print("Internal error (please report it):", file=sys.stderr)
        traceback.print_exc()
        return 1
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['faces_swapped']} face(s) swapped in {summary['frames']} frame(s) -> {summary['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
