"""llama.cpp on Intel CPUs with AMX: the installed build answers, and a build that would crash
is loaded so that it does not.

llama.cpp's AMX path crashes (SIGSEGV in ggml_backend_amx_mul_mat) on quantized weights; pip's
-march=native build compiles it in on an AMX CPU. `make install` builds without the AMX
instructions, and the engine loads a build that has the path without the extra buffer types.
On a CPU with AMX the first test is the proof that matters; elsewhere it still shows the
installed llama.cpp answers in a child process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from starchat_lsp.engine import llamacpp_build, llamacpp_engine
from starchat_lsp.models.store import ModelStore

MODELS = ["smollm2-135m", pytest.param("qwen2.5-coder-1.5b", marks=pytest.mark.default_model)]
RAW_ANSWER = """
import sys
import llama_cpp
llama = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=256, n_threads=2, verbose=False)
print(repr(llama("def fib(n):", max_tokens=8, temperature=0.0)["choices"][0]["text"]))
"""


def gguf(model: str) -> Path:
    path = ModelStore().resolve(model).gguf_path
    if path is None:
        pytest.fail(f"{model} is not pulled: `make pull` pulls it before the suite")
    return path


@pytest.mark.parametrize("model", MODELS)
def test_the_installed_llamacpp_answers_in_a_child_process_without_a_signal(model: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RAW_ANSWER, str(gguf(model))],
        capture_output=True,
        text=True,
        timeout=300,
    )
    died = f" (killed by {signal.Signals(-done.returncode).name})" if done.returncode < 0 else ""
    amx = "an AMX" if llamacpp_build.cpu_has_amx() else "a"
    assert done.returncode == 0, f"raw llama.cpp on {amx} CPU exited {done.returncode}{died}"
    assert done.stdout.strip() not in ("", "''"), done.stdout


def test_make_install_built_llamacpp_without_the_amx_path() -> None:
    info = llamacpp_build.system_info()
    assert info is not None, "llama-cpp-python is not installed"
    assert not llamacpp_build.amx_path_compiled(info), info
    assert llamacpp_build.main(["--ok"]) == 0


def test_the_build_check_reads_llamacpps_system_line() -> None:
    crashing = "CPU : AVX512 = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | REPACK = 1 | "
    safe = "CPU : AVX512 = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | REPACK = 1 | "
    assert llamacpp_build.amx_path_compiled(crashing)
    assert not llamacpp_build.amx_path_compiled(safe)
    assert not llamacpp_build.amx_path_compiled("AMX_INT8 = 0")


def test_a_build_with_the_amx_path_loads_without_extra_buffers_on_an_amx_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llama_cpp.llama_cpp as low_level

    monkeypatch.setattr(llamacpp_build, "system_info", lambda: "CPU : AMX_INT8 = 1 | ")
    monkeypatch.setattr(llamacpp_build, "cpu_has_amx", lambda flags=None: True)
    assert low_level.llama_model_default_params().use_extra_bufts
    with llamacpp_engine._safe_buffers():
        # What Llama() reads while it loads: the repacking buffers stay off, so no AMX kernel.
        assert not low_level.llama_model_default_params().use_extra_bufts
    assert low_level.llama_model_default_params().use_extra_bufts


def test_a_safe_build_keeps_the_extra_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp.llama_cpp as low_level

    monkeypatch.setattr(llamacpp_build, "system_info", lambda: "CPU : AVX512 = 1 | REPACK = 1 | ")
    monkeypatch.setattr(llamacpp_build, "cpu_has_amx", lambda flags=None: True)
    with llamacpp_engine._safe_buffers():
        assert low_level.llama_model_default_params().use_extra_bufts
