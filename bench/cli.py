"""`python -m bench`: run the sections on one model, print the table, save it with a chart."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import (
    cancellation,
    engine_overhead,
    keystrokes,
    lsp_overhead,
    machine,
    report,
    responsiveness,
    reuse,
    scale,
    startup,
    worker,
)
from bench.harness import REPO, Bench, Options
from bench.results_model import Section
from starchat_lsp.models.catalogue import DEFAULT_MODEL

SECTIONS: dict[str, Callable[[Bench], Section]] = {
    "engine": engine_overhead.run,
    "lsp": lsp_overhead.run,
    "responsive": responsiveness.run,
    "cancel": cancellation.run,
    "reuse": reuse.run,
    "startup": startup.run,
    "scale": scale.run,
    "worker": worker.run,
    "keystrokes": keystrokes.run,
}


def parse(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalogue name or model folder")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: checks the benchmark runs (CI)"
    )
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), help="run these sections")
    parser.add_argument("--runs", type=int, help="timed repetitions (default 5; quick 2)")
    parser.add_argument(
        "--new-tokens", type=int, help="tokens per generation (default 64; quick 8)"
    )
    parser.add_argument(
        "--samples", type=int, help="responsiveness samples (default 200; quick 20)"
    )
    parser.add_argument(
        "--worker-backends",
        nargs="+",
        choices=["llamacpp", "transformers"],
        help="section 8's backends (default: llama.cpp if the model has a GGUF, transformers; "
        "quick: the first)",
    )
    parser.add_argument(
        "--edits", type=int, help="section 9: lines retyped in the replay (default 12; quick 2)"
    )
    parser.add_argument(
        "--completion-model",
        default="",
        help="section 9: the server's completion.model (a smaller model beside --model)",
    )
    parser.add_argument(
        "--no-prefetch",
        action="store_true",
        help="section 9: completion.prefetch off (the replay still says where the cursor rests)",
    )
    parser.add_argument(
        "--look",
        nargs=2,
        type=float,
        default=(0.5, 2.0),
        metavar=("MIN", "MAX"),
        help="section 9: seconds the cursor rests at a place before the edit (default 0.5 2)",
    )
    parser.add_argument("--dtype", default="auto", help="as the server's model.dtype setting")
    parser.add_argument(
        "--out", type=Path, help="folder for the results (default bench/results/...)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(args.model).name + (f"+{args.completion_model}" if args.completion_model else "")
    name += "-no-prefetch" if args.no_prefetch else ""
    name += f"-look{args.look[0]:g}-{args.look[1]:g}" if tuple(args.look) != (0.5, 2.0) else ""
    return Options(
        model=args.model,
        quick=quick,
        runs=args.runs or (2 if quick else 5),
        new_tokens=args.new_tokens or (8 if quick else 64),
        samples=args.samples or (20 if quick else 200),
        cancels=2 if quick else 5,
        prompt_lengths=(64, 256) if quick else (256, 1024, 4096),
        concurrency=(1, 2) if quick else (1, 2, 4),
        dtype=args.dtype,
        sections=tuple(args.only or SECTIONS),
        worker_backends=tuple(args.worker_backends or ()),
        edits=args.edits or (2 if quick else 12),
        completion_model=args.completion_model,
        prefetch=not args.no_prefetch,
        look=(args.look[0], args.look[1]),
        out=args.out or REPO / "bench" / "results" / f"{stamp}-{name}{'-quick' if quick else ''}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    options.out.mkdir(parents=True, exist_ok=True)
    # The servers it starts get model hosts of their own, gone when the run ends: a benchmark
    # never shares a model with the user's editor, nor leaves one loaded for minutes.
    os.environ.setdefault("STARCHAT_LSP_RUNTIME_DIR", tempfile.mkdtemp(prefix="bench-hosts-"))
    os.environ.setdefault("STARCHAT_LSP_SHARED_IDLE_S", "1")
    bench = Bench(options)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    sections, failed = [], []
    for key in options.sections:
        bench.log(f"section {key}")
        try:
            sections.append(SECTIONS[key](bench))
        except Exception:
            # A benchmark that breaks is a failure; a slow figure never is.
            failed.append(key)
            traceback.print_exc()
    title = f"starchat-lsp benchmark: {bench.resolved.name} ({time.strftime('%Y-%m-%d %H:%M')})"
    path = report.save(options.out, title, machine.describe(), command, sections)
    sys.stdout.write(path.read_text())
    print(f"saved {path} and {path.with_name('chart.png')}", file=sys.stderr)
    if failed:
        print(f"bench: these sections broke: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
