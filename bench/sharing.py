"""Several clients of one model: the shared host against a private worker per client.

    python -m bench.sharing [--model M] [--clients 3] [--requests 3] [--tokens 64] [--out DIR]

Each client is a process of its own that opens the engine the way the server and the CLI do
(`open_engine`) and asks for `--requests` answers of `--tokens` tokens. Rows:
- one client alone, on the shared host (the reference);
- `--clients` clients at once on the shared host: one model worker, requests queued on it;
- `--clients` clients at once, each with its own private worker (what every editor window
  loading its own model did): N copies of the model, N generations thrashing the cores.
Reported per row: model worker processes and their memory (RSS, summed, sampled while the
clients run), total tokens/s over the clients' wall time, and its ratio to one client alone
(goal for the shared host: at least 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from starchat_lsp.engine import cpu

# A client: load (not timed), then its answers one after the other; one JSON line at the end.
CLIENT = r"""
import json, sys, time
from starchat_lsp.engine.base import ChatMessage, GenerationSettings
from starchat_lsp.engine.factory import EngineSettings, open_engine
model, shared = sys.argv[1], sys.argv[2] == "1"
requests, tokens = int(sys.argv[3]), int(sys.argv[4])
engine = open_engine(EngineSettings(model=model), shared=shared)
engine.load()
print("loaded", flush=True)
sys.stdin.readline()  # the go
prompt = [ChatMessage("user", "Explain in detail how a hash map works, with an example in C.")]
settings = GenerationSettings(max_new_tokens=tokens)
started = time.monotonic()
out = 0
for _ in range(requests):
    out += engine.chat(prompt, settings).finish().tokens_out
print(json.dumps({"started": started, "ended": time.monotonic(), "tokens": out}), flush=True)
engine.close()
"""


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we may read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            found[int(entry.name)] = (parent, command)
    return found


def workers_rss(clients: set[int], hosts_dir: str) -> tuple[int, int]:
    """Model workers started by these clients or by a host of `hosts_dir`; their memory."""
    processes = _processes()
    owners = set(clients) | {pid for pid, (_, cmd) in processes.items() if hosts_dir in cmd}
    count, rss = 0, 0
    for pid, (parent, command) in processes.items():
        if parent not in owners or "starchat_lsp.engine.worker.child" not in command:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
        count += 1
    return count, rss


def run_row(
    model: str, clients: int, shared: bool, requests: int, tokens: int
) -> dict[str, object]:
    env = dict(os.environ)
    hosts_dir = tempfile.mkdtemp(prefix="bench-hosts-")
    env["STARCHAT_LSP_RUNTIME_DIR"] = hosts_dir
    env["STARCHAT_LSP_SHARED_IDLE_S"] = "0"
    command = [sys.executable, "-c", CLIENT, model, "1" if shared else "0", str(requests)]
    command.append(str(tokens))
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(clients)
    ]
    for proc in procs:  # every model loaded before anyone starts: loads are not measured
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "loaded":
            raise RuntimeError(f"a client failed to load {model}")
    pids = {proc.pid for proc in procs}
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            count, rss = workers_rss(pids, hosts_dir)
            peak[0], peak[1] = max(peak[0], count), max(peak[1], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        assert proc.stdout is not None
        results.append(json.loads(proc.stdout.readline()))
        proc.wait(120)
    done.set()
    sampler.join()
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    total = sum(r["tokens"] for r in results)
    return {
        "clients": clients,
        "shared": shared,
        "workers": peak[0],
        "worker_rss_mb": round(peak[1] / 1e6),
        "tokens": total,
        "seconds": round(wall, 2),
        "tokens_per_s": round(total / wall, 2) if wall > 0 else 0.0,
    }


def table(rows: list[dict[str, object]], alone: float) -> str:
    lines = [
        "| clients | model host | model workers | their memory | total tokens/s | vs one alone |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        speed = float(row["tokens_per_s"])  # type: ignore[arg-type]
        ratio = speed / alone if alone else 0.0
        host = "shared" if row["shared"] else "one private worker each"
        lines.append(
            f"| {row['clients']} | {host} | {row['workers']} | {row['worker_rss_mb']} MB "
            f"| {speed:.1f} | {ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = [run_row(args.model, 1, True, args.requests, args.tokens)]
    rows.append(run_row(args.model, args.clients, True, args.requests, args.tokens))
    rows.append(run_row(args.model, args.clients, False, args.requests, args.tokens))
    alone = float(rows[0]["tokens_per_s"])  # type: ignore[arg-type]
    header = (
        f"{cpu.model_name()}, {cpu.usable_cores()} cores; {args.model}; each client "
        f"{args.requests} answers of up to {args.tokens} tokens; load average "
        f"{os.getloadavg()[0]:.2f} at the end"
    )
    report = f"{header}\n\n{table(rows, alone)}\n"
    print(report)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sharing.md").write_text(report)
        (args.out / "sharing.json").write_text(json.dumps({"header": header, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
