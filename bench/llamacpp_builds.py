"""llama.cpp builds and load parameters on this CPU: which answer, which crash, how fast.

    python -m bench.llamacpp_builds [--model M] [--other-build DIR] [--out DIR]

Each row decodes 128 tokens with raw llama-cpp-python in its own child process (a crash is a
row, not the end of the run): the installed build with its default parameters and with
`use_extra_bufts=False` (no weight repacking: the engine's guard for builds with the AMX path),
and the same two for another build (`--other-build`, a folder with a `llama_cpp` package, e.g.
one built by plain `pip` with -march=native, to show what `make install` avoids). One row at a
time: two model processes at once on 2 cores measure each other, not the build.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from starchat_lsp.engine import cpu
from starchat_lsp.models.store import ModelStore

TOKENS = 128
PROMPT = "def quicksort(items):\n    "

# Run in the child: load, put the prompt through, time the decode; one JSON line at the end.
CHILD = r"""
import json, sys, time
import llama_cpp
import llama_cpp.llama_cpp as low
path, threads, tokens, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if extra == "off":
    defaults = low.llama_model_default_params
    def params():
        p = defaults()
        p.use_extra_bufts = False
        return p
    low.llama_model_default_params = params
info = llama_cpp.llama_print_system_info().decode()
llama = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                        verbose=False)
prompt = llama.tokenize(sys.argv[5].encode())
started = time.perf_counter()
llama.eval(prompt)
prefill_s = time.perf_counter() - started
times = []
for n, token in enumerate(llama.generate(prompt, temp=0.0, top_k=1, reset=False)):
    times.append(time.perf_counter())
    if n + 1 >= tokens:
        break
decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
amx = "AMX_INT8 = 1" in info
print(json.dumps({"tokens_per_s": decode, "prefill_s": prefill_s, "amx_path": amx}))
"""


def run_row(gguf: Path, threads: int, extra: str, build: Path | None) -> dict[str, object]:
    env = dict(os.environ)
    if build is not None:
        env["PYTHONPATH"] = f"{build}{os.pathsep}{env.get('PYTHONPATH', '')}"
    command = [sys.executable, "-c", CHILD, str(gguf), str(threads), str(TOKENS), extra, PROMPT]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    row: dict[str, object] = {
        "build": "installed" if build is None else str(build),
        "extra_buffers": extra,
        "seconds": round(time.monotonic() - started, 1),
    }
    if done.returncode < 0:
        row["outcome"] = f"crashed ({signal.Signals(-done.returncode).name})"
    elif done.returncode != 0:
        row["outcome"] = f"failed (exit {done.returncode}): {done.stderr.strip()[-200:]}"
    else:
        row.update(json.loads(done.stdout.strip().splitlines()[-1]))
        row["outcome"] = "ok"
    return row


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| build | extra buffers (repacking) | AMX path compiled | outcome | decode tokens/s |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        speed = row.get("tokens_per_s")
        shown = f"{speed:.1f}" if isinstance(speed, float) else "-"
        amx = "-" if "amx_path" not in row else ("yes" if row["amx_path"] else "no")
        lines.append(
            f"| {row['build']} | {row['extra_buffers']} | {amx} | {row['outcome']} | {shown} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--other-build", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    gguf = ModelStore().resolve(args.model).gguf_path
    if gguf is None:
        parser.error(f"{args.model} has no GGUF: pull it first")
    threads = args.threads or cpu.usable_cores()
    rows = []
    for build in (None, args.other_build) if args.other_build else (None,):
        for extra in ("on", "off"):
            rows.append(run_row(gguf, threads, extra, build))
            print(json.dumps(rows[-1]), file=sys.stderr)
    flags = " ".join(f for f in cpu.FLAGS_THAT_MATTER if f in cpu.cpu_flags())
    header = f"{cpu.model_name()}, {threads} threads ({flags}); {args.model}, {TOKENS} tokens"
    report = f"{header}\n\n{table(rows)}\n"
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "llamacpp_builds.md").write_text(report)
        (args.out / "llamacpp_builds.json").write_text(json.dumps({"cpu": header, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
