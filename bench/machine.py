"""What machine and software a result came from: printed above every table."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1e6
    except OSError:
        pass
    return 0.0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, str]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": f"{_cpu_model()}, {cores} cores usable, torch threads {torch.get_num_threads()}",
        "memory": f"{_memory_gb():.0f} GB",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "software": ", ".join(
            f"{name} {_version(name)}"
            for name in ("torch", "transformers", "pygls", "llama_cpp_python", "starchat-lsp")
        ),
    }
