"""Re-create the example photos from public-domain images that scikit-image ships.

Run: python examples/make_examples.py   (the files are committed; this documents where they come from)
"""

from __future__ import annotations

from pathlib import Path

from skimage import data

from pipelines.image_io import save_image, to_rgb

HERE = Path(__file__).resolve().parent


def main() -> None:
    save_image(to_rgb(data.astronaut()), HERE / "astronaut.png")
    save_image(to_rgb(data.camera()), HERE / "cameraman.png")


if __name__ == "__main__":
    main()
