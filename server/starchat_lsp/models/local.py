"""Copy a model the user already has (a GGUF file or a transformers folder) into the store."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from starchat_lsp.models.errors import PullError
from starchat_lsp.models.fetch import Progress


def copy_gguf(source: Path, dest: Path, progress: Progress | None) -> dict[str, object]:
    """Copy a local GGUF file into the store, hashing it on the way; returns its manifest entry."""
    with source.open("rb") as check:
        if check.read(4) != b"GGUF":
            raise PullError(f"{source} is not a GGUF file (it does not start with b'GGUF')")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    total, done, digest = source.stat().st_size, 0, hashlib.sha256()
    try:
        with source.open("rb") as reader, partial.open("wb") as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress("copy", done, total)
        partial.replace(dest)
    except OSError as error:
        raise PullError(f"could not copy {source}: {error.strerror or error}") from error
    finally:
        partial.unlink(missing_ok=True)
    return {"file": source.name, "size": total, "sha256": digest.hexdigest()}


def copy_folder(source: Path, dest: Path) -> None:
    """Copy a model folder to `dest`, which appears only when complete."""
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        shutil.copytree(source, partial)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise PullError(f"could not copy {source}: {error}") from error
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
