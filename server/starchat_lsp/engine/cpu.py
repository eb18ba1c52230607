"""The CPU this process runs on: the cores it may use and the features that decide speed."""

from __future__ import annotations

import os
import platform

from starchat_lsp.engine.llamacpp_build import cpu_flags, cpu_has_amx, cpuinfo_value

# The flags that change which kernels the runtimes take (and, for AMX, whether llama.cpp crashes).
FLAGS_THAT_MATTER = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

__all__ = ["FLAGS_THAT_MATTER", "cpu_flags", "cpu_has_amx", "model_name", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def model_name() -> str:
    return cpuinfo_value("model name") or platform.processor() or platform.machine()
