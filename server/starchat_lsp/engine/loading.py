"""Device and dtype choice, and loading a transformers model with errors a user can act on."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starchat_lsp.engine.base import ProgressCallback
from starchat_lsp.engine.cpu import cpu_flags
from starchat_lsp.errors import ModelLoadError

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str
    dtype: str


def choose_device(setting: str = "auto") -> str:
    import torch

    if setting not in DEVICES:
        raise ModelLoadError(f"unknown device {setting!r}: use one of {', '.join(DEVICES)}")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is visible: use 'cpu'")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


def cpu_has_fast_bf16() -> bool:
    """bf16 pays off on CPUs with native bf16 dot products (AVX512-BF16, AMX); elsewhere fp32."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def choose_dtype(setting: str, device: str) -> str:
    import torch

    if setting not in DTYPES:
        raise ModelLoadError(f"unknown dtype {setting!r}: use one of {', '.join(DTYPES)}")
    if setting != "auto":
        return setting
    if device == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if cpu_has_fast_bf16() else "float32"


def load_transformers_model(
    location: str,
    *,
    is_hub_id: bool,
    device: str,
    dtype: str,
    progress: ProgressCallback | None = None,
) -> LoadedModel:
    """Load tokenizer and weights from a local folder or a hub id; every failure says what to do."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    # Our own progress callback reports the stages; tqdm bars would clutter the terminal and logs.
    transformers_logging.disable_progress_bar()
    say = progress or (lambda _message: None)
    if not is_hub_id:
        folder = Path(location)
        if not folder.is_dir():
            raise ModelLoadError(f"model folder {location} does not exist: check the path")
        if not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"{location} is not a transformers model folder (no config.json): "
                "point --model at a folder made by save_pretrained, or pull a catalogue model"
            )
    torch_dtype = getattr(torch, dtype)
    # Read at call time: huggingface_hub reads HF_HUB_OFFLINE once at import and would otherwise
    # spend a minute retrying a network that is not there.
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        say("loading tokenizer")
        tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=offline)
        say(f"loading weights ({dtype} on {device})")
        model: Any = AutoModelForCausalLM.from_pretrained(
            location, dtype=torch_dtype, local_files_only=offline
        )
        model = model.to(device).eval()
    except (MemoryError, torch.OutOfMemoryError) as error:
        raise ModelLoadError(
            f"not enough memory to load {location} in {dtype} on {device}: "
            "choose a smaller model (`starchat-lsp models list`)"
        ) from error
    except OSError as error:
        if is_hub_id and offline:
            raise ModelLoadError(
                f"{location} is not in the local Hugging Face cache and the hub is not reachable "
                "offline: pull a catalogue model (`starchat-lsp models list`) "
                "or name a local folder"
            ) from error
        raise ModelLoadError(f"cannot load {location}: {_first_line(error)}") from error
    except Exception as error:  # safetensors, config and tokenizer parsers raise their own types
        log.debug("model load failed", exc_info=error)
        raise ModelLoadError(
            f"{location} could not be loaded ({_first_line(error)}): the folder may be corrupt; "
            "pull it again (`starchat-lsp models remove NAME` then `models pull NAME`)"
        ) from error
    log.info("loaded %s (%s on %s)", location, dtype, device)
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
