"""How much of the machine's CPU other processes took while a benchmark measured: on a shared
machine, the figure that says whether a slow result is ours (Linux /proc; None elsewhere)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def _tree_s(root: int) -> float:
    """CPU seconds of `root` and every process below it that still runs (and their waited-for
    children)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / TICKS
    total, wanted = 0.0, {root}
    changed = True
    while changed:  # the descendants of root, however deep
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    for pid in wanted:
        total += times.get(pid, 0.0)
    return total


@dataclass(frozen=True)
class Sample:
    at: float  # seconds of wall time (monotonic)
    machine_s: float
    ours_s: float


def sample() -> Sample | None:
    import time

    try:
        return Sample(time.monotonic(), _machine_busy_s(), _tree_s(os.getpid()))
    except (OSError, ValueError, IndexError):
        return None


def others_share(start: Sample | None, end: Sample | None) -> float | None:
    """The share of all cores (0-1) that processes outside ours kept busy between the samples."""
    if start is None or end is None or end.at <= start.at:
        return None
    cores = os.cpu_count()  # /proc/stat counts the whole machine
    others = (end.machine_s - start.machine_s) - (end.ours_s - start.ours_s)
    return max(0.0, others) / ((end.at - start.at) * (cores or 1))
