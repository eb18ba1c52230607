"""The CI gate on pip-audit's report: fail on a known vulnerability that has a fixed release.

pip-audit itself fails on every known vulnerability, fixed or not, and has no switch for "only
those with a fix". CI runs it with `-f json -o FILE` and then this file as a script:

    .venv/bin/pip-audit --skip-editable -f json -o test-output/pip-audit.json || true
    .venv/bin/python tests/test_security_audit.py test-output/pip-audit.json

The tests below check the gate on sample reports, offline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def fixable(report: dict[str, Any]) -> list[str]:
    """One line for each vulnerability in the report that a newer release fixes."""
    return [
        f"{dependency['name']} {dependency.get('version', '?')}: {vuln['id']} "
        f"(fixed in {', '.join(vuln['fix_versions'])})"
        for dependency in report.get("dependencies", [])
        for vuln in dependency.get("vulns", [])
        if vuln.get("fix_versions")
    ]


def unaudited(report: dict[str, Any]) -> list[str]:
    """The dependencies pip-audit skipped, other than our own editable package.

    Offline, or with the advisory service down, pip-audit skips every dependency ("not found on
    PyPI") and still says "No known vulnerabilities found": the gate must not pass on that.
    """
    return [
        f"{dependency['name']}: {dependency['skip_reason']}"
        for dependency in report.get("dependencies", [])
        if "skip_reason" in dependency and "editable" not in dependency["skip_reason"].lower()
    ]


def main(path: str) -> int:
    report = json.loads(Path(path).read_text())
    found, skipped = fixable(report), unaudited(report)
    for line in found:
        print(f"vulnerable: {line}: upgrade it", file=sys.stderr)
    for line in skipped[:5]:
        print(f"not audited: {line}", file=sys.stderr)
    if skipped:
        print(f"{len(skipped)} dependencies not audited: is PyPI reachable?", file=sys.stderr)
    return 1 if found or skipped else 0


def test_a_vulnerability_with_a_fix_fails_the_gate(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {"name": "jinja2", "version": "3.1.2", "vulns": [
                {"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": []},
                {"id": "PYSEC-0000-1", "fix_versions": [], "aliases": []},
            ]},
            {"name": "torch", "version": "2.13.0", "vulns": []},
            {"name": "starchat-lsp", "skip_reason": "Dependency not installed; skipping editable"},
        ],
        "fixes": [],
    }  # fmt: skip
    assert fixable(report) == ["jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert main(str(path)) == 1


def test_dependencies_it_could_not_audit_fail_the_gate(tmp_path: Path) -> None:
    skipped = {
        "name": "torch",
        "skip_reason": "Dependency not found on PyPI and could not be audited: torch (2.13.0)",
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"dependencies": [skipped], "fixes": []}))
    assert main(str(path)) == 1


def test_no_vulnerability_or_none_fixable_passes(tmp_path: Path) -> None:
    unfixed = {"name": "x", "version": "1", "vulns": [{"id": "V-1", "fix_versions": []}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"dependencies": [unfixed], "fixes": []}))
    assert main(str(path)) == 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
