"""The options that say how a local model runs, shared by the code commands and the eval."""

from __future__ import annotations

import argparse

from starchat_lsp.engine.factory import BACKENDS
from starchat_lsp.engine.loading import DEVICES, DTYPES

# The backends a command line picks for a local model; http is given by a URL (eval) or settings.
LOCAL_BACKENDS = tuple(backend for backend in BACKENDS if backend != "http")


def add_engine_options(parser: argparse.ArgumentParser, backend_help: str) -> None:
    """--backend (default auto), --device and --dtype."""
    parser.add_argument("--backend", default="auto", choices=LOCAL_BACKENDS, help=backend_help)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
