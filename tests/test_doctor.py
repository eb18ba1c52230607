"""`starchat-lsp doctor` on this machine: real backends answering in worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MODEL = "smollm2-135m"


def doctor(*args: str, fault: str = "") -> tuple[int, dict[str, Any] | str]:
    env = {**os.environ, "STARCHAT_LSP_WORKER_FAULT": fault}
    command = [sys.executable, "-m", "starchat_lsp", "doctor", "--model", MODEL, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert "Traceback" not in done.stderr, done.stderr
    if "--json" in args:
        return done.returncode, json.loads(done.stdout)
    return done.returncode, done.stdout


def test_doctor_reports_the_machine_and_each_backend_answering() -> None:
    code, found = doctor("--json")
    assert isinstance(found, dict)
    assert code == 0, found
    assert found["cores"] == len(os.sched_getaffinity(0))
    flags = Path("/proc/cpuinfo").read_text().split()
    assert all(flag in flags for flag in found["flags"]), found["flags"]
    assert found["amx_cpu"] == ("amx_int8" in flags)
    assert found["default_order"] == ["llamacpp", "transformers"]
    by_backend = {smoke["backend"]: smoke for smoke in found["smoke"]}
    for backend in ("llamacpp", "transformers"):
        smoke = by_backend[backend]
        assert smoke["outcome"] == "ok", smoke
        assert smoke["tokens_per_s"] > 0 and smoke["first_token_s"] > 0, smoke
    assert found["llamacpp_amx_path"] is False
    assert any(m["name"] == MODEL for m in found["models"]), found["models"]
    assert any(f"threads: {found['cores']}" in advice for advice in found["advice"])


def test_doctor_names_a_crashing_backend_and_what_to_set_and_fails() -> None:
    code, found = doctor("--json", fault="segv@prompt:llamacpp")
    assert isinstance(found, dict)
    assert code == 1, found
    by_backend = {smoke["backend"]: smoke for smoke in found["smoke"]}
    assert by_backend["llamacpp"]["outcome"] == "crashed", by_backend
    assert "SIGSEGV" in by_backend["llamacpp"]["message"], by_backend
    assert by_backend["transformers"]["outcome"] == "ok", by_backend
    assert "set model.backend to transformers" in " ".join(found["advice"]), found["advice"]


def test_doctor_prints_a_readable_report() -> None:
    code, text = doctor("--backend", "llamacpp")
    assert code == 0 and isinstance(text, str)
    for heading in ("CPU", "llama.cpp", "torch", "models", "llamacpp", "set"):
        assert heading in text, text
    assert "OK · loaded in" in text, text
