"""What the installed llama.cpp was built with, and whether it is safe on this CPU.

pip builds llama-cpp-python from source with ``-march=native``. On an Intel CPU with AMX that
compiles in ggml's AMX matrix path, which crashes (SIGSEGV in ``ggml_backend_amx_mul_mat``) on
Q4_K weights: llama.cpp issue 20824. ``make install`` builds with the AMX instructions turned off;
a build that has them anyway (``pip install`` by hand) is loaded without the extra buffer types
(``use_extra_bufts=False``): no crash, at a lower decode speed.

Run as a script (``python llamacpp_build.py --ok``) it exits 0 when llama.cpp imports and has no
AMX path compiled in: the Makefile's check. It imports nothing of the package for that reason.
"""

from __future__ import annotations

import argparse
import re
import sys

AMX_FLAGS = ("amx_int8", "amx_tile", "amx_bf16")
NO_AMX_FLAGS = "-mno-amx-int8 -mno-amx-tile -mno-amx-bf16"
REBUILD_HINT = (
    f"CMAKE_ARGS=\"-DCMAKE_C_FLAGS='{NO_AMX_FLAGS}' -DCMAKE_CXX_FLAGS='{NO_AMX_FLAGS}'\" "
    "pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python"
)


def cpuinfo_value(key: str, cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The first CPU's `key` line of /proc/cpuinfo (None where it has none, e.g. on macOS)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(key):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo has none)."""
    return set((cpuinfo_value("flags") or "").split())


def cpu_has_amx(flags: set[str] | None = None) -> bool:
    return "amx_int8" in (cpu_flags() if flags is None else flags)


def system_info() -> str | None:
    """llama.cpp's own line of what it was compiled with, or None when it does not import."""
    try:
        import llama_cpp
    except Exception:
        return None
    raw = llama_cpp.llama_print_system_info()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def amx_path_compiled(info: str) -> bool:
    """True when the build says ``AMX_INT8 = 1``: the crashing path is in the library."""
    return re.search(r"\bAMX_INT8\s*=\s*1\b", info) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ok", action="store_true", help="exit 0 only when llama.cpp imports without an AMX path"
    )
    args = parser.parse_args(argv)
    info = system_info()
    if info is None:
        print("llama.cpp: not installed", file=sys.stderr)
        return 1
    if amx_path_compiled(info):
        print("llama.cpp: built with the AMX path (crashes on AMX CPUs): rebuild", file=sys.stderr)
        return 1
    if not args.ok:
        print(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
