"""Photo loading: every odd input gets a clear message; every image mode becomes RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import InputError
from pipelines.image_io import load_image, save_image, to_rgb
from pipelines.types import ImageLimits
from tests.media_samples import png_header_claiming


def test_grayscale_rgba_and_palette_photos_become_rgb(tmp_path: Path) -> None:
    gray = tmp_path / "gray.png"
    Image.fromarray(np.full((31, 17), 100, np.uint8), "L").save(gray)
    rgba = tmp_path / "rgba.png"
    pixels = np.zeros((20, 20, 4), np.uint8)
    pixels[..., 0] = 255
    pixels[..., 3] = 128  # half transparent red over white -> pink
    Image.fromarray(pixels, "RGBA").save(rgba)
    palette = tmp_path / "palette.gif"
    Image.fromarray(np.full((9, 9, 3), 40, np.uint8)).convert("P").save(palette)
    loaded_gray = load_image(gray)
    assert loaded_gray.shape == (31, 17, 3) and loaded_gray.dtype == np.uint8 and int(loaded_gray[0, 0, 1]) == 100
    pink = load_image(rgba)[0, 0]
    assert pink[0] == 255 and 120 <= pink[1] <= 135
    assert load_image(palette).shape == (9, 9, 3)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    image = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    image.save(path, exif=exif)
    assert load_image(path).shape == (30, 10, 3)


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "empty"), (b"hello, I am a text file", "not a photo"), (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a photo")],
)
def test_unreadable_files_are_refused_clearly(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected):
        load_image(path)


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:900])
    with pytest.raises(InputError, match="damaged or truncated"):
        load_image(path)


def test_huge_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = png_header_claiming(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(InputError, match=r"too large.*900 megapixels"):
        load_image(path)


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(path)
    with pytest.raises(InputError, match="MB"):
        load_image(path, ImageLimits(max_bytes=10))
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_to_rgb_handles_float_and_single_channel_arrays() -> None:
    assert to_rgb(np.ones((4, 5), np.float32))[0, 0].tolist() == [255, 255, 255]
    assert to_rgb(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(InputError):
        to_rgb(np.zeros((4, 5, 2), np.uint8))


def test_save_image_is_atomic_and_round_trips(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 255, (33, 47, 3), dtype=np.uint8)
    out = save_image(image, tmp_path / "out" / "x.png")
    np.testing.assert_array_equal(load_image(out), image)
    with pytest.raises(InputError, match="extension"):
        save_image(image, tmp_path / "x.txt")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.png"]
