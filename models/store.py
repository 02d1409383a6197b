"""Where model files live, and how they are downloaded, resumed, verified and extracted.

`ensure_model(name)` is the one entry point the app uses: it returns the folder of a model set whose
files are all present and match their published sha256, downloading (with mirrors, progress and
resume) whatever is missing. A file whose hash does not match is never loaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests
from tqdm import tqdm

from models.registry import Download, ModelFile, ModelSet, get_model_set
from pipelines.errors import ModelError

MODEL_DIR_ENV = "SWAPSPOT_MODEL_DIR"
MIRROR_ENV = "SWAPSPOT_MODEL_MIRROR"  # optional base URL tried first, e.g. a classroom file server
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 30.0
CHUNK = 1 << 20
NETWORK_CHUNK = 64 * 1024  # small, so a dropped connection loses little of what was received

ProgressFactory = Callable[[str, int, int], "tqdm[bytes]"]


def model_root() -> Path:
    """The folder holding all model sets: $SWAPSPOT_MODEL_DIR, or the `models/` folder of this checkout."""
    configured = os.environ.get(MODEL_DIR_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else Path(__file__).resolve().parent


def set_dir(model_set: ModelSet) -> Path:
    return model_root() / model_set.name


def file_path(model_set: ModelSet, filename: str) -> Path:
    return set_dir(model_set) / filename


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per process for a given (path, size, modification time)."""
    return sha256_file(Path(path))


def file_matches(path: Path, expected: ModelFile) -> bool:
    stat = path.stat()
    if stat.st_size != expected.size:
        return False
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns) == expected.sha256


@dataclass(frozen=True)
class FileStatus:
    model_file: ModelFile
    path: Path
    present: bool
    verified: bool  # present and sha256 matches the registry

    @property
    def problem(self) -> str | None:
        if not self.present:
            return f"missing: {self.path}"
        if not self.verified:
            return f"wrong checksum (damaged or altered file): {self.path}"
        return None


def check_set(model_set: ModelSet) -> list[FileStatus]:
    """Hash every present file of the set against the registry."""
    statuses = []
    for model_file in model_set.files:
        path = file_path(model_set, model_file.filename)
        present = path.is_file()
        statuses.append(FileStatus(model_file, path, present, present and file_matches(path, model_file)))
    return statuses


def verified_file(set_name: str, filename: str) -> Path:
    """Path of a registry file after checking its sha256; raises `ModelError` if missing or altered."""
    model_set = get_model_set(set_name)
    model_file = model_set.file(filename)
    path = file_path(model_set, filename)
    if not path.is_file():
        raise ModelError(
            f"The model file {filename} ({model_set.name}) is not installed. "
            f"Run `python -m models fetch {model_set.name}`, or place the file at {path}."
        )
    if not file_matches(path, model_file):
        raise ModelError(
            f"The model file {path} does not match its published checksum (sha256 {model_file.sha256}): "
            f"it is damaged or was altered, so it will not be loaded. Delete it and run "
            f"`python -m models fetch {model_set.name}`."
        )
    return path


def mirror_urls(download: Download) -> list[str]:
    """The registry mirrors, preceded by $SWAPSPOT_MODEL_MIRROR/<filename> when that is set."""
    urls = list(download.urls)
    base = os.environ.get(MIRROR_ENV, "").strip()
    if base:
        urls.insert(0, f"{base.rstrip('/')}/{download.filename}")
    return urls


def _default_progress(desc: str, total: int, initial: int) -> tqdm:
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=True)


def fetch_url(url: str, part: Path, download: Download, progress: ProgressFactory | None) -> None:
    """Download `url` into `part`, resuming from its current length when the server allows ranges."""
    start = part.stat().st_size if part.exists() else 0
    if start > download.size:
        part.unlink()
        start = 0
    if start == download.size:
        return
    headers = {"Range": f"bytes={start}-"} if start else {}
    timeout = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    with requests.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True) as response:
        if start and response.status_code == 200:
            start = 0  # the server ignored the range request: start over
        elif response.status_code not in (200, 206):
            raise OSError(f"HTTP {response.status_code}")
        bar = progress(download.filename, download.size, start) if progress else None
        try:
            with part.open("ab" if start else "wb") as handle:
                for chunk in response.iter_content(NETWORK_CHUNK):
                    handle.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                    if handle.tell() > download.size:
                        raise OSError("the server sent more bytes than the published size")
        finally:
            if bar is not None:
                bar.close()


def download_verified(download: Download, dest_dir: Path, progress: ProgressFactory | None = _default_progress) -> Path:
    """Fetch a registry download into dest_dir, trying each mirror; the final name appears only once verified."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / download.filename
    part = dest_dir / f"{download.filename}.part"
    expected = ModelFile(download.filename, download.sha256, download.size)
    failures: list[str] = []
    for url in mirror_urls(download):
        # 1. Download (or resume) into the .part file.
        try:
            fetch_url(url, part, download, progress)
        except (requests.RequestException, OSError) as error:
            failures.append(f"{url}: {describe_network_error(error)}")
            continue
        # 2. Verify before the file gets its real name.
        if part.stat().st_size == download.size and sha256_file(part) == download.sha256:
            part.replace(final)
            return final
        if part.stat().st_size >= download.size:
            part.unlink()  # complete but wrong: never resume from these bytes
            failures.append(f"{url}: the downloaded file does not match the published sha256 (discarded)")
        else:
            failures.append(f"{url}: the download stopped early ({part.stat().st_size} of {download.size} bytes)")
    assert not final.exists() or file_matches(final, expected)
    tried = "\n".join(f"  - {line}" for line in failures)
    raise ModelError(
        f"Could not download {download.filename} ({download.size / 1e6:.0f} MB). Tried:\n{tried}\n"
        f"To install it by hand, download it from one of these addresses on a connected machine and place it at:\n"
        f"  {final}\n"
        f"(expected sha256 {download.sha256}), then run `python -m models verify`."
    )


def describe_network_error(error: BaseException) -> str:
    if isinstance(error, requests.ConnectionError):
        return "no connection (offline, blocked, or the host is down)"
    if isinstance(error, requests.Timeout):
        return "timed out"
    return str(error) or type(error).__name__


def _member_is_safe(name: str) -> bool:
    pure = PurePosixPath(name.replace("\\", "/"))
    return not pure.is_absolute() and ".." not in pure.parts and not (pure.parts and pure.parts[0].endswith(":"))


def extract_archive(archive: Path, model_set: ModelSet, dest_dir: Path) -> None:
    """Extract the set's files from a zip by their base names; refuse archives with escaping paths."""
    wanted = {f.filename: f for f in model_set.files}
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            unsafe = [m.filename for m in members if not _member_is_safe(m.filename)]
            if unsafe:
                raise ModelError(f"Refusing {archive.name}: it contains paths outside its folder ({unsafe[0]}).")
            for member in members:
                base = PurePosixPath(member.filename).name
                if member.is_dir() or base not in wanted:
                    continue
                # Each file is written to a temporary name inside dest_dir, checked, then renamed.
                target = dest_dir / base
                tmp = dest_dir / f"{base}.part"
                with zipped.open(member) as source, tmp.open("wb") as handle:
                    while block := source.read(CHUNK):
                        handle.write(block)
                if sha256_file(tmp) != wanted[base].sha256:
                    tmp.unlink()
                    raise ModelError(f"{base} inside {archive.name} does not match its published sha256.")
                tmp.replace(target)
    except zipfile.BadZipFile as error:
        raise ModelError(f"{archive} is not a valid zip archive: {error}") from error


def ensure_model(name: str, progress: ProgressFactory | None = _default_progress) -> Path:
    """Make sure every file of a model set is present and verified; return the set's folder."""
    model_set = get_model_set(name)
    folder = set_dir(model_set)
    # 1. Already complete?
    if all(s.verified for s in check_set(model_set)):
        return folder
    # 2. Single-file sets: download the file itself (a wrong file in place is set aside first).
    if not model_set.is_archive:
        final = folder / model_set.download.filename
        if final.exists():
            final.replace(final.with_name(final.name + ".rejected"))
        download_verified(model_set.download, folder, progress)
    # 3. Archives: use a hand-placed or earlier zip when it verifies, else download it; then extract.
    else:
        archive = folder / model_set.download.filename
        archive_file = ModelFile(archive.name, model_set.download.sha256, model_set.download.size)
        if not (archive.is_file() and file_matches(archive, archive_file)):
            archive.unlink(missing_ok=True)
            archive = download_verified(model_set.download, folder, progress)
        extract_archive(archive, model_set, folder)
        archive.unlink()
    problems = [s.problem for s in check_set(model_set) if s.problem]
    if problems:
        raise ModelError(f"{model_set.name} is still incomplete after download: " + "; ".join(problems))
    return folder
