"""Talking to the terminal: load with a spinner, stream text, stop at once on Ctrl-C."""

from __future__ import annotations

import glob
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from rich.console import Console

from starchat_lsp.engine.base import Engine, GenerationResult, TextStream

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def load_engine(engine: Engine) -> None:
    """Load the model with a spinner on stderr (stdout stays clean for answers and diffs)."""
    with stderr.status(f"loading {engine.name}…") as status:
        engine.load(lambda message: status.update(f"{engine.name}: {message}…"))


def stream_text(stream: TextStream, out: TextIO | None) -> GenerationResult:
    """Write chunks as they come; Ctrl-C cancels the generation and waits for the model to stop."""
    try:
        for chunk in stream:
            if out is not None:
                out.write(chunk)
                out.flush()
    except KeyboardInterrupt:
        stream.cancel()
        try:
            stream.finish()  # within one token: the model is free before we exit
        except Exception as error:  # e.g. the model process went away meanwhile
            # Ctrl-C still ends the command: an error here must not replace it (the caller
            # would take a crash for a reason to ask again, and answer in full).
            logging.getLogger(__name__).info("while stopping: %s", error)
        raise
    if out is not None and stream.result.text and not stream.result.text.endswith("\n"):
        out.write("\n")
    return stream.result


def describe(name: str, result: GenerationResult, load_time_s: float | None) -> str:
    """One line of numbers about the generation, for stderr."""
    parts = [name]
    if load_time_s is not None:
        parts.append(f"loaded in {load_time_s:.1f} s")
    parts.append(f"{result.tokens_in} tokens in, {result.tokens_out} out")
    if result.time_to_first_token_s is not None:
        parts.append(f"first token {result.time_to_first_token_s:.2f} s")
    parts.append(f"{result.tokens_per_s:.1f} tokens/s")
    parts.append(f"stopped: {result.stop_reason.value}")
    return " · ".join(parts)


def print_diff(diff: str, out: TextIO = sys.stdout) -> None:
    if not out.isatty():
        out.write(diff)
        return
    colours = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}
    for line in diff.splitlines(keepends=True):
        colour = colours.get(line[:1], "")
        if line.startswith(("+++", "---")):
            colour = "\033[1m"
        out.write(f"{colour}{line.rstrip(chr(10))}\033[0m\n" if colour else line)


# A temporary file of ours older than this was left by a write that was killed, not one running.
STALE_TEMPORARY_S = 60.0


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the `.NAME.XXXXXXXX.tmp` files an earlier, killed write of `path` left behind."""
    removed = []
    now = time.time()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.????????.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMPORARY_S:
                leftover.unlink()
                removed.append(leftover)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed


def write_atomically(path: Path, text: str, *, backup: bool = True) -> Path | None:
    """Replace `path` in one step (a crash leaves the old file whole); returns the backup path."""
    remove_stale_temporaries(path)
    data = text.encode("utf-8")
    mode = path.stat().st_mode & 0o7777
    backup_path = None
    if backup:
        backup_path = path.with_name(path.name + ".orig")
        backup_path.write_bytes(path.read_bytes())
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return backup_path
