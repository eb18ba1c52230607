"""The run folder's files: JSONL written one finished record at a time, read back forgivingly.

A run can be killed at any moment; a record is either whole on disk or not there at all (a cut
last line is dropped when read), so resuming only ever redoes the one unfinished item.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
PROMPTS = "prompts.jsonl"
RUN = "run.json"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Add one record and make it durable before returning."""
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with path.open("a", encoding="utf-8") as file:
        if file.tell() > 0 and not _ends_with_newline(path):
            file.write("\n")  # a line cut by a crash stays alone and is skipped when read
        file.write(line)
        file.flush()
        os.fsync(file.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every whole record of a JSONL file; a missing file has none, a cut line is skipped."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a killed run was writing
            if isinstance(record, dict):
                records.append(record)
    return records


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace a small JSON file in one step."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
