"""The model registry: every model set the app can use, with mirrors, sha256, size and licence.

Facts come from ../shared/reference/models.md (gathered from the public InsightFace release pages and
the tools that mirror them). Only files whose sha256 is pinned here are ever accepted from a download.
"""

from __future__ import annotations

from dataclasses import dataclass

INSIGHTFACE_LICENSE = (
    "InsightFace pretrained models: non-commercial research use only "
    "(https://github.com/deepinsight/insightface#license). The InsightFace code is MIT."
)


@dataclass(frozen=True)
class ModelFile:
    """One file the app loads."""

    filename: str  # name on disk inside the set's folder
    sha256: str  # lowercase hex digest of the exact published bytes
    size: int  # bytes
    role: str = ""  # what the app uses it for: detector, recognizer, landmarks, swapper, or ""


@dataclass(frozen=True)
class Download:
    """What is fetched from the network: the file itself or a zip archive holding the files."""

    filename: str  # name of the downloaded file
    sha256: str
    size: int
    urls: tuple[str, ...]  # mirrors, tried in order


@dataclass(frozen=True)
class ModelSet:
    name: str
    description: str
    license: str
    download: Download
    files: tuple[ModelFile, ...]
    default: bool  # fetched on first start of the app

    @property
    def is_archive(self) -> bool:
        return self.download.filename.endswith(".zip")

    def file(self, filename: str) -> ModelFile:
        for model_file in self.files:
            if model_file.filename == filename:
                return model_file
        raise KeyError(f"{self.name} has no file {filename}")


_RELEASE = "https://github.com/deepinsight/insightface/releases/download/v0.7"

REGISTRY: tuple[ModelSet, ...] = (
    ModelSet(
        name="buffalo_l",
        description="InsightFace analysis pack: SCRFD-10G detector, ArcFace R50 recognizer, landmarks",
        license=INSIGHTFACE_LICENSE,
        download=Download(
            filename="buffalo_l.zip",
            sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
            size=288_621_354,
            urls=(f"{_RELEASE}/buffalo_l.zip",),
        ),
        files=(
            ModelFile(
                "det_10g.onnx",
                "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91",
                16_923_827,
                "detector",
            ),
            ModelFile(
                "w600k_r50.onnx",
                "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43",
                174_383_860,
                "recognizer",
            ),
            ModelFile(
                "2d106det.onnx",
                "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
                5_030_888,
                "landmarks",
            ),
            ModelFile("1k3d68.onnx", "df5c06b8a0c12e422b2ed8947b8869faa4105387f199c477af038aa01f9a45cc", 143_607_619),
            ModelFile("genderage.onnx", "4fde69b1c810857b88c64a335084f1c3fe8f01246c9a191b48c7bb756d6652fb", 1_322_532),
        ),
        default=True,
    ),
    ModelSet(
        name="buffalo_s",
        description="Small InsightFace pack: SCRFD-500M detector and MobileFaceNet recognizer (faster, less accurate)",
        license=INSIGHTFACE_LICENSE,
        download=Download(
            filename="buffalo_s.zip",
            sha256="d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e",
            size=127_607_557,
            urls=(f"{_RELEASE}/buffalo_s.zip",),
        ),
        files=(
            ModelFile(
                "det_500m.onnx",
                "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
                2_524_817,
                "detector",
            ),
            ModelFile(
                "w600k_mbf.onnx",
                "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
                13_616_099,
                "recognizer",
            ),
        ),
        default=False,
    ),
    ModelSet(
        name="inswapper_128",
        description="InsightFace inswapper_128 face swapper (original release, fp32)",
        license=INSIGHTFACE_LICENSE,
        download=Download(
            filename="inswapper_128.onnx",
            sha256="e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
            size=554_253_681,
            urls=(
                "https://huggingface.co/hacksider/deep-live-cam/resolve/main/inswapper_128.onnx",
                "https://huggingface.co/datasets/Gourieff/ReActor/resolve/main/models/inswapper_128.onnx",
                "https://huggingface.co/ezioruan/inswapper_128.onnx/resolve/main/inswapper_128.onnx",
            ),
        ),
        files=(
            ModelFile(
                "inswapper_128.onnx",
                "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af",
                554_253_681,
                "swapper",
            ),
        ),
        default=True,
    ),
)

ROLE_DEFAULTS: dict[str, tuple[str, str]] = {
    "detector": ("buffalo_l", "det_10g.onnx"),
    "recognizer": ("buffalo_l", "w600k_r50.onnx"),
    "landmarks": ("buffalo_l", "2d106det.onnx"),
    "swapper": ("inswapper_128", "inswapper_128.onnx"),
}
"""Which registry file serves each role unless the user points the role at a local file."""

ROLE_ENV: dict[str, str] = {
    "detector": "SWAPSPOT_DETECTOR",
    "recognizer": "SWAPSPOT_RECOGNIZER",
    "landmarks": "SWAPSPOT_LANDMARKS",
    "swapper": "SWAPSPOT_SWAPPER",
}
"""Environment variables that point a role at a local ONNX file (loaded unverified)."""


def get_model_set(name: str) -> ModelSet:
    for model_set in REGISTRY:
        if model_set.name == name:
            return model_set
    known = ", ".join(m.name for m in REGISTRY)
    raise KeyError(f"unknown model set '{name}' (known: {known})")


def default_sets() -> tuple[ModelSet, ...]:
    return tuple(m for m in REGISTRY if m.default)
