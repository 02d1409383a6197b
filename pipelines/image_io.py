"""Reading and writing photos safely: limits checked from the header before decoding, any mode -> RGB."""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.errors import InputError, check_input_file
from pipelines.types import ImageLimits, ImageRGB

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def to_rgb(array: np.ndarray) -> ImageRGB:
    """Grayscale (H, W) or (H, W, 1), RGB, or RGBA (composited on white) uint8 -> RGB uint8."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(f"This does not look like a photo (array of shape {array.shape}).")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)


def load_image(path: Path | str, limits: ImageLimits | None = None) -> ImageRGB:
    """Open a photo as RGB uint8, refusing empty, unreadable, oversized or absurdly large images first."""
    limits = limits or ImageLimits()
    path = Path(path)
    name = path.name
    # 1. The file itself.
    size = check_input_file(path)
    if size > limits.max_bytes:
        raise InputError(f"The file {name} is {size / 1e6:.0f} MB; photos up to {limits.max_bytes / 1e6:.0f} MB.")
    # 2. The header: dimensions are known before any pixel is decoded.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                width, height = probe.size
                check_dimensions(width, height, limits, name)
                # 3. Decode, honour the EXIF orientation of phone photos, convert to RGB.
                probe.load()
                oriented = ImageOps.exif_transpose(probe)
                image = oriented if oriented is not None else probe
                if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                    return to_rgb(np.asarray(image.convert("RGBA")))
                return to_rgb(np.asarray(image.convert("RGB")))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(claimed.group(1)) / 1e6:.0f} megapixels" if claimed else "an enormous size"
        raise InputError(
            f"{name} is too large for this app: its header claims {pixels} "
            f"(at most {limits.max_pixels / 1e6:.0f} megapixels)."
        ) from error
    except UnidentifiedImageError as error:
        raise InputError(f"{name} is not a photo this app can read ({type(error).__name__}).") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{name} could not be read: the file looks damaged or truncated.") from error


def check_dimensions(width: int, height: int, limits: ImageLimits, name: str = "The image") -> None:
    if width < 1 or height < 1:
        raise InputError(f"{name} has no pixels.")
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise InputError(
            f"{name} is {width}x{height} pixels, too large for this app "
            f"(at most {limits.max_side} pixels a side and {limits.max_pixels / 1e6:.0f} megapixels)."
        )


def save_image(image: ImageRGB, path: Path | str, quality: int = 92) -> Path:
    """Write atomically (temporary file then rename), so a failure never leaves a partial output."""
    path = Path(path)
    suffix = path.suffix.lower()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}.get(suffix)
    if fmt is None:
        raise InputError(f"Cannot write a photo with the extension '{suffix}'; use .jpg, .png or .webp.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
        Image.fromarray(to_rgb(image)).save(tmp_name, format=fmt, **options)
        Path(tmp_name).chmod(0o644)  # mkstemp creates 0600 files; outputs are ordinary files
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
