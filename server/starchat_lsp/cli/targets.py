"""`FILE[:START-END]` arguments: parse them, read the file, and refuse what we can't work on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from starchat_lsp.cli.errors import UserError

_RANGE = re.compile(r"^(?P<path>.+):(?P<start>\d+)(?:-(?P<end>\d+))?$")
MAX_FILE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    path: Path
    start: int | None = None  # 1-based, inclusive, as the user wrote it
    end: int | None = None


def parse_target(spec: str) -> Target:
    """`a.py`, `a.py:12` (the function around line 12) or `a.py:12-20`."""
    match = _RANGE.match(spec)
    if match is None or Path(spec).exists():  # a file may really be called `x:1`
        return Target(Path(spec))
    start = int(match["start"])
    end = int(match["end"]) if match["end"] else None
    if start < 1 or (end is not None and end < start):
        raise UserError(f"bad line range in {spec!r}: write FILE:START-END with 1 <= START <= END")
    return Target(Path(match["path"]), start, end)


def read_source(path: Path) -> str:
    """The file's text; a missing, binary, huge or undecodable file is one clear error."""
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"{path} is {size // 1024 // 1024} MB: select a range of lines instead")
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise UserError(f"{path} is a binary file: name a source file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 text (byte {error.start}): convert it first"
        ) from None


def zero_based_range(target: Target, text: str) -> tuple[int, int] | None:
    """The 0-based inclusive lines the user named, checked against the file; None = no range."""
    if target.start is None:
        return None
    count = len(text.splitlines())
    end = target.end if target.end is not None else target.start
    if end > count:
        shown = f"{target.start}-{end}" if target.end is not None else str(target.start)
        raise UserError(f"line {shown} is outside {target.path} (it has {count} lines)")
    return target.start - 1, end - 1
