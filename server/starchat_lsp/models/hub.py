"""Download a transformers model folder from the Hugging Face hub, when the user asks for one.

The download runs in a child process: the command line sets HF_HUB_OFFLINE=1 for everything else,
and huggingface_hub reads that setting once, when it is first imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from starchat_lsp.models.errors import PullError

OFFLINE_MESSAGE = (
    "cannot reach the Hugging Face hub (offline?): pull a catalogue model "
    "(`starchat-lsp models list`) or a local folder"
)
# What a chat model needs; not the other weight formats a repository may also carry.
_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def download_from_hub(repo_id: str, out: Path) -> None:
    """Download `repo_id` into the folder `out`, which appears only when complete."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    command = [sys.executable, "-m", "starchat_lsp.models.hub", repo_id, str(partial)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise PullError(lines[-1] if lines else OFFLINE_MESSAGE)
    if not (partial / "config.json").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise PullError(f"{repo_id} has no config.json: it is not a transformers model")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)


def _download_in_this_process(repo_id: str, out: Path) -> int:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        snapshot_download(repo_id, local_dir=out, allow_patterns=_PATTERNS)
    except GatedRepoError:
        print(f"{repo_id} is gated: accept its terms on the hub and log in first", file=sys.stderr)
    except RepositoryNotFoundError:
        print(f"{repo_id} was not found on the Hugging Face hub", file=sys.stderr)
    except Exception:  # connection errors come in many types; all mean the same to the user
        print(OFFLINE_MESSAGE, file=sys.stderr)
    else:
        return 0
    return 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m starchat_lsp.models.hub OWNER/NAME OUT_FOLDER")
    sys.exit(_download_in_this_process(sys.argv[1], Path(sys.argv[2])))
