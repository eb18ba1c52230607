from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import CHATML_TEMPLATE, build_tiny_model

# Servers and CLIs started by the tests share model hosts as a user's do, but in a folder of the
# test run's own, and a host exits as soon as its last client is gone: no test finds another's
# model (its key-value cache, its injected faults) and none is left running after the suite.
os.environ.setdefault("STARCHAT_LSP_RUNTIME_DIR", tempfile.mkdtemp(prefix="starchat-test-hosts-"))
os.environ.setdefault("STARCHAT_LSP_SHARED_IDLE_S", "0")


@pytest.fixture(scope="session")
def tiny_chatml_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model whose tokenizer has a ChatML chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-chatml"), chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="session")
def tiny_fim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model whose vocabulary has StarCoder fill-in-the-middle tokens."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-fim"), chat_template=None, fim=True)


@pytest.fixture(scope="session")
def tiny_starchat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model with no chat template: the engine must use the StarChat format."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-starchat"), chat_template=None)
