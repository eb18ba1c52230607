"""Turn a GGUF file into a transformers model folder (bfloat16 safetensors + tokenizer).

The work runs in a child process (`python -m starchat_lsp.models.convert GGUF OUT`): dequantizing
takes several GB that a long-lived server would otherwise keep, and a crash there cannot leave a
half-written folder behind, because the folder is written as `OUT.partial` and renamed at the end.
The child watches its stdin, a pipe from its parent: when the parent dies (a model worker killed
mid-conversion) it exits at once instead of converting for nobody, and a small process of the same
module (`--remove-after PID OUT`) deletes `OUT.partial` once the child is gone: removed while the
child still wrote, files written meanwhile would be left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from starchat_lsp.models.errors import PullError
from starchat_lsp.models.fetch import Progress

# Bumped when a conversion changes what it writes: older folders are converted again on use.
CONVERTER_VERSION = 2

# tqdm bars of the steps that take the time: "... GGUF tensors...:  41%|████ | 139/339 [..."
_BAR = re.compile(r"(?:GGUF tensors|Loading weights)[^|\r\n]*\|[^|\r\n]*\|\s*(\d+)/(\d+)")


def convert_gguf(gguf: Path, out: Path, log: Path, progress: Progress | None = None) -> None:
    """Convert `gguf` into the folder `out` in a child process; its output goes to `log`."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    package_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "starchat_lsp.models.convert", str(gguf), str(partial)]
    if progress:
        progress("convert", 0, 0)
    with log.open("wb") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # never written: it closes when we die, which stops the child
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        assert child.stdout is not None and child.stdin is not None
        try:
            while chunk := os.read(child.stdout.fileno(), 4096):
                log_file.write(chunk)
                bars = _BAR.findall(chunk.decode(errors="replace"))
                if progress and bars:
                    progress("convert", int(bars[-1][0]), int(bars[-1][1]))
        except BaseException:  # Ctrl-C included: stop the child and leave nothing behind
            child.kill()
            child.wait()
            shutil.rmtree(partial, ignore_errors=True)
            raise
        finally:
            child.stdin.close()
        code = child.wait()
    if code != 0 or not (partial / "config.json").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise PullError(
            f"converting {gguf} failed ({_last_line(log) or f'exit code {code}'}): "
            f"the details are in {log}"
        )
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


def _last_line(log: Path) -> str:
    text = log.read_text(errors="replace").replace("\r", "\n")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _convert_in_this_process(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    _match_llama_cpp_pre_tokenizer(tokenizer, gguf)
    # dequantize=True: with the `kernels` package installed transformers would otherwise keep the
    # weights packed, and packed GGUF weights cannot be saved.
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.bfloat16,  # half the disk and memory of float32; what the engine loads
        quantization_config=GgufConfig(dequantize=True),
    )
    # The saved folder holds plain weights: nothing may tell the loader they are still GGUF.
    if hasattr(model, "hf_quantizer"):
        delattr(model, "hf_quantizer")
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if getattr(AutoConfig.from_pretrained(out), "quantization_config", None) is not None:
        raise RuntimeError("the converted config still names a quantization")


def _gguf_string(gguf: Path, key: str) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields.get(key)
    return None if field is None else bytes(field.parts[field.data[0]]).decode("utf-8")


def _match_llama_cpp_pre_tokenizer(tokenizer: object, gguf: Path) -> None:
    """Split text the way the model was trained, as llama.cpp does from `tokenizer.ggml.pre`.

    transformers rebuilds a GGUF's tokenizer with a plain byte-level pre-tokenizer; SmolLM2's
    own one first splits digits one by one, so numbers (line numbers in our prompts) would
    otherwise become tokens the model never saw in training.
    """
    from tokenizers import pre_tokenizers

    if _gguf_string(gguf, "tokenizer.ggml.pre") == "smollm":
        backend = tokenizer.backend_tokenizer  # type: ignore[attr-defined]
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )


def _stop_when_the_parent_dies(out: Path, finished: threading.Event) -> None:
    """End of stdin before we finished: the parent is gone; the half-written `out` goes too,
    removed by another process once this one has stopped writing to it (it stops at once)."""

    def watch() -> None:
        while os.read(0, 4096):  # the raw descriptor: sys.stdin's lock would block our exit
            pass
        if not finished.is_set():
            _remove_when_gone(out)
            os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _remove_when_gone(out: Path) -> None:
    """Have another process delete `out` once this one has stopped (see `_remove_after`)."""
    command = [sys.executable, "-m", "starchat_lsp.models.convert", "--remove-after"]
    command += [str(os.getpid()), str(out)]
    subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _running(pid: int) -> bool:
    """Whether the process still runs (a zombie waiting to be reaped has stopped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _remove_after(pid: int, out: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--remove-after":
        _remove_after(int(sys.argv[2]), Path(sys.argv[3]))
        sys.exit(0)
    if len(sys.argv) != 3:
        sys.exit("usage: python -m starchat_lsp.models.convert FILE.gguf OUT_FOLDER")
    done = threading.Event()
    _stop_when_the_parent_dies(Path(sys.argv[2]), done)
    try:
        _convert_in_this_process(Path(sys.argv[1]), Path(sys.argv[2]))
    except BaseException:
        # A parent killed midway also closes our stdout: the progress bar's next write fails
        # here (BrokenPipeError), sometimes before the stdin watch sees the end, and the process
        # then exits without it: the half-written folder was left (1 run in 3-7 of the test).
        _remove_when_gone(Path(sys.argv[2]))
        raise
    done.set()
